"""The router's own messages: built, and register and private read (docs/protocol.md §3)."""

from __future__ import annotations

import struct

import pytest
from pythonosc.osc_message import OscMessage

from support.osc import msg, osc_string, raw_message
from tcposcrouter.errors import ErrorCode, RemoteError
from tcposcrouter.osc.messages import (
    build_bundle,
    build_message,
    error_message,
    message_address,
    name_problem,
    parse_arguments,
    printable,
    read_private,
    read_register,
    register_message,
    user_list_message,
)
from tcposcrouter.osc.validate import validate_packet

BLOB = struct.pack(">i", 5) + b"12345\x00\x00\x00"


def test_parse_arguments_gives_values_and_positions() -> None:
    packet = raw_message(
        "/oscrouter/register",
        ",sSsshb",
        osc_string("u")
        + osc_string("p")
        + osc_string("g")
        + osc_string("gp")
        + struct.pack(">q", 7)
        + BLOB,
    )
    validate_packet(packet)
    args = parse_arguments(packet)
    assert [(a.tag, a.value) for a in args] == [
        ("s", "u"),
        ("S", "p"),
        ("s", "g"),
        ("s", "gp"),
        ("h", 7),
        ("b", None),
    ]
    assert packet[args[0].start : args[0].end] == osc_string("u")
    assert args[-1].end == len(packet)


def test_text_that_is_not_utf8_is_given_as_bytes_and_a_register_refuses_it() -> None:
    packet = raw_message("/oscrouter/register", ",s", osc_string(b"\xff\xfe"))
    assert parse_arguments(packet)[0].value == b"\xff\xfe"
    # osc-js sends "Müller" in Latin-1: the router reads register fields, so it says why.
    latin1 = raw_message(
        "/oscrouter/register",
        ",ssss",
        b"".join(osc_string(t) for t in (b"ana", b"M\xfcller", b"band", b"gpw")),
    )
    with pytest.raises(RemoteError) as info:
        read_register(latin1)
    assert info.value.code == ErrorCode.BAD_REGISTER
    assert "user password is not UTF-8" in info.value.detail


def test_a_private_message_needs_a_utf8_target_but_not_a_utf8_address() -> None:
    to_nobody = raw_message("/oscrouter/private", ",ss", osc_string(b"b\xf6b") + osc_string("/x"))
    with pytest.raises(RemoteError) as info:
        read_private(to_nobody)
    assert info.value.code == ErrorCode.BAD_PRIVATE
    latin1 = raw_message("/oscrouter/private", ",ss", osc_string("bob") + osc_string(b"/f\xfc"))
    request = read_private(latin1)
    assert request.target == "bob" and request.address == "/f\ufffd"
    assert request.as_sent_by("ana").endswith(osc_string(b"/f\xfc"))  # forwarded as it came


def test_build_message_is_read_back_by_python_osc() -> None:
    packet = build_message("/oscrouter/register", ("s", "ana"), ("i", 5), ("f", 1.5), ("d", 0.1))
    parsed = OscMessage(packet)
    assert parsed.address == "/oscrouter/register"
    assert list(parsed.params) == ["ana", 5, 1.5, 0.1]
    with pytest.raises(TypeError):
        build_message("/x", ("i", "not a number"))


def test_printable_escapes_control_characters() -> None:
    assert printable("a\nb") == "a\\x0ab"
    assert len(printable("x" * 500)) < 100


def test_register_message_is_what_read_register_reads() -> None:
    packet = register_message("ana", "secret", "band", "gpw", 42)
    assert validate_packet(packet) is True
    request = read_register(packet)
    assert (request.user, request.user_password, request.group, request.group_password) == (
        "ana",
        "secret",
        "band",
        "gpw",
    )
    assert request.random_id == ("i", 42)
    assert request.reply_address() == "/oscrouter/register/ana/42"
    assert "secret" not in repr(request) and "gpw" not in repr(request)


def test_register_random_id_float_is_written_as_python_does() -> None:
    request = read_register(msg("/oscrouter/register", "ana", "p", "g", "gp", 1234.0))
    assert request.reply_address() == "/oscrouter/register/ana/1234.0"
    assert read_register(msg("/oscrouter/register", "ana", "p", "g", "gp")).random_id == ("i", 0)


@pytest.mark.parametrize(
    ("packet", "why"),
    [
        (msg("/oscrouter/register", "ana", "p", "g"), "3 arguments"),
        (msg("/oscrouter/register", "ana", 1, "g", "gp"), "argument 2"),
        (msg("/oscrouter/register", "", "p", "g", "gp"), "user name is empty"),
        (msg("/oscrouter/register", "ana", "p", "g" * 65, "gp"), "group name is longer"),
        (msg("/oscrouter/register", "a\nb", "p", "g", "gp"), "control character"),
        (msg("/oscrouter/register", "ana", "p", "g", "gp", "id"), "randomId"),
    ],
)
def test_bad_registers_are_refused_with_a_reason(packet: bytes, why: str) -> None:
    with pytest.raises(RemoteError) as info:
        read_register(packet)
    assert info.value.code == ErrorCode.BAD_REGISTER and info.value.fatal
    assert why in info.value.detail


def test_names_up_to_64_characters_without_control_characters() -> None:
    assert name_problem("x" * 64) is None
    assert name_problem("Zoë ünd Bøb") is None
    assert name_problem("x" * 65) is not None
    assert name_problem("tab\there") is not None


def test_private_is_rewritten_with_the_sender_and_every_other_byte_kept() -> None:
    packet = raw_message(
        "/oscrouter/private",
        ",ssid",
        osc_string("bob") + osc_string("/hi") + struct.pack(">id", 7, 0.1),
    )
    request = read_private(packet)
    assert (request.target, request.address) == ("bob", "/hi")
    rewritten = request.as_sent_by("alexandra")
    assert rewritten == raw_message(
        "/oscrouter/private",
        ",ssid",
        osc_string("alexandra") + osc_string("/hi") + struct.pack(">id", 7, 0.1),
    )


@pytest.mark.parametrize(
    "packet",
    [
        msg("/oscrouter/private", "bob"),
        msg("/oscrouter/private", 1, "/x"),
        msg("/oscrouter/private"),
    ],
)
def test_private_without_target_and_address_is_refused(packet: bytes) -> None:
    with pytest.raises(RemoteError) as info:
        read_private(packet)
    assert info.value.code == ErrorCode.BAD_PRIVATE and not info.value.fatal


def test_router_messages_read_back_with_python_osc() -> None:
    users = OscMessage(user_list_message(["ana", "bob"]))
    assert (users.address, list(users.params)) == ("/oscrouter/userlist", ["ana", "bob"])
    error = OscMessage(error_message("auth_failed", "wrong password"))
    assert list(error.params) == ["auth_failed", "wrong password"]
    assert message_address(error_message("x", "y")) == "/oscrouter/error"
    inner = msg("/note", 60)
    built = build_bundle(b"\x00" * 7 + b"\x01", [inner])
    assert validate_packet(built) is False
    assert built == b"#bundle\x00" + b"\x00" * 7 + b"\x01" + struct.pack(">i", len(inner)) + inner

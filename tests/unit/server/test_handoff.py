"""Where a connection belongs with --workers (server/handoff.py): the group its first packet
registers for, and the worker that owns that group."""

from __future__ import annotations

from support.osc import msg, register
from tcposcrouter.osc.framing import Framing, frame
from tcposcrouter.server.handoff import owner_of, register_group, url_group


def test_the_group_of_a_register_in_either_framing() -> None:
    packet = register("ana", "trio")
    for framing in (Framing.LENGTH_PREFIX, Framing.SLIP):
        stream = frame(packet, framing) + frame(msg("/note", 60), framing)
        assert register_group(stream) == (True, "trio", False)
        assert register_group(stream[: len(packet) // 2]) == (False, None, False)  # wait


def test_what_is_not_a_register_stays_where_it_landed() -> None:
    note = frame(msg("/note", 60), Framing.LENGTH_PREFIX)
    assert register_group(note) == (True, None, False)
    broken = b"/oscrouter/register\x00,ss\x00"  # a register cut short: the hub answers it
    assert register_group(frame(broken, Framing.LENGTH_PREFIX)) == (True, None, False)
    assert register_group(b"") == (False, None, False)
    # A first packet declared bigger than an unregistered connection may send is not waited
    # for: the hub refuses it at once.
    assert register_group((100_000).to_bytes(4, "big") + b"/oscrouter/register\x00") == (
        True,
        None,
        False,
    )


def test_info_requests_before_the_register_are_answered_where_they_landed() -> None:
    info = msg("/oscrouter/info")
    for framing in (Framing.LENGTH_PREFIX, Framing.SLIP):
        asked = frame(info, framing)
        # Only the question so far: this worker answers it and waits for the register.
        assert register_group(asked) == (True, None, True)
        # The question and the register in one write: the register decides where it goes.
        both = asked + frame(register("ana", "trio"), framing)
        assert register_group(both) == (True, "trio", False)
        # The question and the register's first bytes: the rest of the register is awaited,
        # so that the register still decides where the connection goes.
        assert register_group(both[: len(asked) + 6]) == (False, None, False)


def test_every_worker_names_the_same_owner_and_groups_spread() -> None:
    owners = [owner_of(f"group-{n}", 4) for n in range(400)]
    assert owners == [owner_of(f"group-{n}", 4) for n in range(400)]
    assert set(owners) == {1, 2, 3, 4}
    assert min(owners.count(w) for w in (1, 2, 3, 4)) > 60  # roughly even: 100 each
    assert owner_of("trio", 1) == 1


def test_the_group_of_a_websocket_handshake_that_registers_from_its_url() -> None:
    def head(target: str) -> bytes:
        return f"GET {target} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n".encode()

    assert url_group(head("/osc?user=ana&password=pw&group=tr%C3%ADo&group_password=g")) == "trío"
    assert url_group(head("/osc")) is None  # registers by message: it stays where it landed
    assert url_group(head("/live?group=trio")) is None  # a dashboard, not a member
    assert url_group(b"garbage") is None

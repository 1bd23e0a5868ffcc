"""The hub's entry points for the shells: per-user traffic, the group page's password check,
errors the shell finds or its transport acts on, and the time service."""

from __future__ import annotations

from support.net import Net, error_of
from support.osc import msg
from tcposcrouter.errors import ErrorCode, RemoteError
from tcposcrouter.osc.messages import TIME


def test_each_user_counts_what_it_sent_while_registered() -> None:
    net = Net()
    ana = net.join("ana")
    net.join("bob")
    net.send(ana, msg("/a"), msg("/b"))
    assert ana.user is not None
    assert ana.user.packets_sent == 2
    assert ana.user.bytes_sent == 2 * (len(msg("/a")) + 4)


def test_the_group_page_takes_the_group_password_and_is_throttled() -> None:
    net = Net()
    net.join("ana", "band", group_password="right")
    hub = net.hub
    wait, expected = hub.login.group_pages.claim("198.51.100.1", "band", net.now)
    assert wait == 0 and expected is not None and expected.matches("right")
    hub.login.group_pages.checked("198.51.100.1", "band", True, net.now)

    # Wrong guesses from one address: after a few, that address waits; nobody else does.
    waits = []
    for _ in range(8):
        wait, expected = hub.login.group_pages.claim("203.0.113.9", "band", net.now)
        waits.append(wait)
        if not wait:
            hub.login.group_pages.checked("203.0.113.9", "band", False, net.now)
    assert waits[:5] == [0.0] * 5 and all(w > 0 for w in waits[5:])
    assert hub.login.group_pages.claim("198.51.100.1", "band", net.now)[0] == 0
    # The members' own logins are another account: still checked at once.
    late = net.join("late", "band", group_password="right", address="203.0.113.9")
    assert late.user is not None


def test_no_such_group_looks_like_a_wrong_password() -> None:
    net = Net()
    wait, expected = net.hub.login.group_pages.claim("198.51.100.1", "nobody-here", net.now)
    assert (wait, expected) == (0.0, None)


def test_a_rejected_message_is_answered_and_counted() -> None:
    net = Net()
    ana = net.join("ana", websocket=True)
    net.hub.errors.refuse(ana, RemoteError(ErrorCode.PACKET_INVALID, "a text message"), net.now)
    net.collect()
    assert error_of(net, ana) == ErrorCode.PACKET_INVALID
    assert net.hub.statistics().errors == {ErrorCode.PACKET_INVALID: 1}


def test_an_error_the_transport_closed_on_is_counted_without_a_reply() -> None:
    net = Net()
    ana = net.join("ana", websocket=True)
    net.hub.errors.count(ana, ErrorCode.PACKET_TOO_LARGE, "message too big")
    net.collect()
    assert net.got(ana) == []
    assert net.hub.statistics().errors == {ErrorCode.PACKET_TOO_LARGE: 1}


def test_the_time_service_answers_the_sender_alone() -> None:
    net = Net()
    ana = net.join("ana")
    bob = net.join("bob")
    net.got(ana)
    net.hub.set_wall_clock(1_800_000_000.25 - net.now)  # Unix time 1,800,000,000.25 is now
    client_time = bytes.fromhex("e9c3f7a0 00000001")
    net.send(ana, TIME + b",t\x00\x00" + client_time)
    (reply,) = net.got(ana)
    assert reply[:24] == TIME + b",ttt\x00\x00\x00\x00"
    assert reply[24:32] == client_time  # echoed byte for byte
    seconds = int.from_bytes(reply[32:36], "big") - 2_208_988_800
    fraction = int.from_bytes(reply[36:40], "big") / 2**32
    assert (seconds, fraction) == (1_800_000_000, 0.25)
    assert reply[40:48] == reply[32:40]  # sent in the same turn as received
    assert net.got(bob) == []


def test_a_time_request_without_one_time_tag_is_refused() -> None:
    net = Net()
    ana = net.join("ana")
    net.send(ana, msg("/oscrouter/time", 1))
    assert error_of(net, ana) == ErrorCode.BAD_TIME
    net.send(ana, TIME + b",t\x00\x00" + bytes(8))  # the connection is still registered
    assert net.got_messages(ana)[0][0] == "/oscrouter/time"


def test_time_before_register_is_not_registered() -> None:
    net = Net()
    stranger = net.connect()
    net.send(stranger, TIME + b",t\x00\x00" + bytes(8))
    assert error_of(net, stranger) == ErrorCode.NOT_REGISTERED

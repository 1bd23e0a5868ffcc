"""The hub's entry points for the HTTP side: per-user traffic, the group page's password check,
and errors the shell finds or its transport acts on."""

from __future__ import annotations

from support.net import Net, error_of
from support.osc import msg
from tcposcrouter.errors import ErrorCode, RemoteError


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
    wait, expected = hub.claim_group_page("198.51.100.1", "band", net.now)
    assert wait == 0 and expected is not None and expected.matches("right")
    hub.group_page_checked("198.51.100.1", "band", True, net.now)

    # Wrong guesses from one address: after a few, that address waits; nobody else does.
    waits = []
    for _ in range(8):
        wait, expected = hub.claim_group_page("203.0.113.9", "band", net.now)
        waits.append(wait)
        if not wait:
            hub.group_page_checked("203.0.113.9", "band", False, net.now)
    assert waits[:5] == [0.0] * 5 and all(w > 0 for w in waits[5:])
    assert hub.claim_group_page("198.51.100.1", "band", net.now)[0] == 0
    # The members' own logins are another account: still checked at once.
    late = net.join("late", "band", group_password="right", address="203.0.113.9")
    assert late.user is not None


def test_no_such_group_looks_like_a_wrong_password() -> None:
    net = Net()
    wait, expected = net.hub.claim_group_page("198.51.100.1", "nobody-here", net.now)
    assert (wait, expected) == (0.0, None)


def test_a_rejected_message_is_answered_and_counted() -> None:
    net = Net()
    ana = net.join("ana", websocket=True)
    net.hub.reject(ana, RemoteError(ErrorCode.PACKET_INVALID, "a text message"))
    net.collect()
    assert error_of(net, ana) == ErrorCode.PACKET_INVALID
    assert net.hub.statistics().errors == {ErrorCode.PACKET_INVALID: 1}


def test_an_error_the_transport_closed_on_is_counted_without_a_reply() -> None:
    net = Net()
    ana = net.join("ana", websocket=True)
    net.hub.count_error(ana, ErrorCode.PACKET_TOO_LARGE, "message too big")
    net.collect()
    assert net.got(ana) == []
    assert net.hub.statistics().errors == {ErrorCode.PACKET_TOO_LARGE: 1}

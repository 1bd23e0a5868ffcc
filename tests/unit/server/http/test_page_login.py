"""The dashboard's logins (server/http/page_login.py): a group's page with its password, the
admin token, each throttled at an account of its own."""

from __future__ import annotations

from support.net import Net
from tcposcrouter.server.http.page_login import PageLogins


def test_the_group_page_takes_the_group_password_and_is_throttled() -> None:
    net = Net()
    net.join("ana", "band", group_password="right")
    pages = PageLogins(net.hub.registers.throttle, net.hub.directory)
    wait, expected = pages.claim("198.51.100.1", "band", net.now)
    assert wait == 0 and expected is not None and expected.matches("right")
    pages.checked("198.51.100.1", "band", True, net.now)

    # Wrong guesses from one address: after a few, that address waits; nobody else does.
    waits = []
    for _ in range(8):
        wait, expected = pages.claim("203.0.113.9", "band", net.now)
        waits.append(wait)
        if not wait:
            pages.checked("203.0.113.9", "band", False, net.now)
    assert waits[:5] == [0.0] * 5 and all(w > 0 for w in waits[5:])
    assert pages.claim("198.51.100.1", "band", net.now)[0] == 0
    # The members' own logins are another account: still checked at once.
    late = net.join("late", "band", group_password="right", address="203.0.113.9")
    assert late.user is not None


def test_no_such_group_looks_like_a_wrong_password() -> None:
    net = Net()
    pages = PageLogins(net.hub.registers.throttle, net.hub.directory)
    wait, expected = pages.claim("198.51.100.1", "nobody-here", net.now)
    assert (wait, expected) == (0.0, None)


def test_the_admin_token_is_throttled_per_address() -> None:
    net = Net()
    pages = PageLogins(net.hub.registers.throttle, net.hub.directory)
    waits = []
    for _ in range(8):
        wait = pages.claim_admin("203.0.113.9", net.now)
        waits.append(wait)
        if not wait:
            pages.admin_checked("203.0.113.9", False, net.now)
    assert waits[:5] == [0.0] * 5 and all(w > 0 for w in waits[5:])
    assert pages.claim_admin("198.51.100.1", net.now) == 0.0  # the operator's own address

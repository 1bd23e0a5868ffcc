"""--workers' one place for moving a connection to its group's worker (server/to_owner.py):
the first packet gathered across reads, a move at once, an owner waited for and then given
up on, a connection gone while it waited, and a cluster that keeps it."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from tcposcrouter.osc.framing import frame_length_prefix
from tcposcrouter.osc.messages import register_message
from tcposcrouter.server import to_owner
from tcposcrouter.server.connection import HubConnection
from tcposcrouter.server.running import RunningRouter
from tcposcrouter.server.to_owner import HANDOFF_TRIES, FirstPacket, move_to_owner


def test_the_first_packet_is_gathered_across_reads() -> None:
    stream = frame_length_prefix(register_message("ana", "pw", "trio", "gpw", 1)) + b"\x00\x00"
    first = FirstPacket()
    assert first.add(stream[:5]) is None
    assert first.add(stream[5:20]) is None
    assert first.add(stream[20:]) == (stream, "trio", False)  # everything read goes with it
    assert FirstPacket().add(b"\x00\x00\x00\x08/x\x00\x00,\x00\x00\x00") == (
        b"\x00\x00\x00\x08/x\x00\x00,\x00\x00\x00",
        None,  # not a register: it stays where it is
        False,
    )


class Owners:
    def __init__(self, owner: int | None) -> None:
        self.owner = owner

    def elsewhere(self, group: str) -> int | None:
        return self.owner


class Router:
    def __init__(self, owner: int | None, cluster: object = None) -> None:
        self.handoff, self.cluster = Owners(owner), cluster


class Connection:
    def __init__(self) -> None:
        self.session = None
        self.moved: list[tuple[int, str, str]] = []
        self.was_reset = False

    def moved_to(self, owner: int, group: str, how: str) -> None:
        self.moved.append((owner, group, how))

    def reset(self) -> None:
        self.was_reset = True


def run(
    router: Router, answers: list[str | None], here: bool = True
) -> tuple[bool, Connection, int, int]:
    """move_to_owner with a Mover that answers `answers` in turn (then None for ever)."""
    connection = Connection()
    offers, settled = [0], [0]

    def move(owner: int) -> str | None:
        offers[0] += 1
        return answers.pop(0) if answers else None

    async def main() -> bool:
        taken = move_to_owner(
            cast(RunningRouter, router), cast(HubConnection, connection), "trio", move,
            lambda: here, lambda: settled.__setitem__(0, settled[0] + 1),
        )  # fmt: skip
        await asyncio.sleep(0.2)
        return taken

    return asyncio.run(main()), connection, offers[0], settled[0]


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(to_owner, "HANDOFF_RETRY_SECONDS", 0.001)


def test_this_workers_group_stays_and_another_moves_at_once() -> None:
    assert run(Router(None), ["handed"])[0] is False
    taken, connection, offers, settled = run(Router(2), ["relayed"])
    assert (taken, connection.moved, offers, settled) == (True, [(2, "trio", "relayed")], 1, 1)


def test_an_owner_that_cannot_take_it_yet_is_asked_again() -> None:
    taken, connection, offers, settled = run(Router(2), [None, None, "handed"])
    assert (taken, connection.moved, offers, settled) == (True, [(2, "trio", "handed")], 3, 1)
    assert not connection.was_reset


def test_an_owner_that_never_takes_it_closes_it_after_every_try() -> None:
    taken, connection, offers, settled = run(Router(2), [])
    assert (taken, connection.moved, connection.was_reset) == (True, [], True)
    assert (offers, settled) == (1 + HANDOFF_TRIES, 1)


def test_a_connection_gone_while_it_waited_is_left_alone() -> None:
    taken, connection, offers, settled = run(Router(2), [], here=False)
    assert (taken, connection.was_reset, offers, settled) == (True, False, 1, 1)


def test_in_a_cluster_it_stays_and_the_cluster_carries_it() -> None:
    cluster: Any = object()
    taken, connection, offers, settled = run(Router(2, cluster), [])
    assert (taken, connection.moved, offers, settled) == (False, [], 1, 0)

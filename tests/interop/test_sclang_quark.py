"""The SuperCollider quark (supercollider/TcpOscRouter) in headless sclang processes against the
real router: two members exchange messages, private messages and user lists; a wrong password
reaches onFailure; a member whose connection is cut comes back with what it missed; HyperDisCo's
SyncText (the real class) syncs a text through TcpOscRouterClient; two TcpOscRouterClocks and a
Python client agree on the group's beat, and patterns play on the same beats; sclang joins
through the one port (`--port`)."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_message import OscMessage

from support.client import Client
from support.osc import msg
from support.peers import PeerProgram, hyperdisco_classes, require_program, sclang_program
from support.process import RouterProcess, free_port, wait_until
from support.relay import FreezableRelay
from tcposcrouter.osc.tempo import read_tempo_message

pytestmark = pytest.mark.timeout(240)

REPOSITORY = Path(__file__).resolve().parents[2]
QUARK = REPOSITORY / "supercollider" / "TcpOscRouter" / "Classes"
PEERS = Path(__file__).parent / "peers" / "quark"


@pytest.fixture
def sclangs() -> Iterator[list[PeerProgram]]:
    started: list[PeerProgram] = []
    yield started
    for peer in started:
        peer.stop()
        print(peer.output())  # shown on failure: what sclang printed


def start(
    started: list[PeerProgram],
    script: str,
    tmp_path: Path,
    port: int,
    group: str,
    user: str,
    **env: str,
) -> PeerProgram:
    require_program("sclang")
    folder = tmp_path / user
    folder.mkdir(exist_ok=True)
    classes = [QUARK, PEERS / "standin"]
    if script == "synctext.scd":
        classes.append(hyperdisco_classes())
    variables = {"TCPOSC_PORT": str(port), "TCPOSC_GROUP": group, "TCPOSC_USER": user, **env}
    peer = sclang_program(PEERS / script, folder, variables, classes=classes)
    started.append(peer)
    return peer


def test_two_sclang_members_exchange_messages_private_messages_and_user_lists(
    router: RouterProcess, group: str, tmp_path: Path, sclangs: list[PeerProgram]
) -> None:
    py = Client(router.osc10_port).join("py", group)
    alice = start(sclangs, "member.scd", tmp_path, router.osc10_port, group, "alice")
    alice.wait_for("QUARK_JOINED", 60)
    bob = start(sclangs, "member.scd", tmp_path, router.osc10_port, group, "bob")
    bob.wait_for("QUARK_JOINED", 60)
    for peer in (alice, bob):
        peer.wait_for("QUARK_PEERS alice,bob,py", 10)
    py.drain(0.5)
    py.send(msg("/quark/send", 1))  # both send a /note to the group
    py.send(msg("/quark/private", "py"))
    wait_until(lambda: "alice 1" in bob.said("QUARK_GOT"), 10, "bob never heard alice")
    assert "bob 1" in alice.said("QUARK_GOT")
    notes = sorted(tuple(p.args) for p in py.drain(1.0) if p.address == "/note")
    assert notes == [("alice", 1), ("bob", 1)]
    # Privately, from Python to one of them and between them.
    py.send(msg("/oscrouter/private", "alice", "/psst", "from py"))
    alice.wait_for("QUARK_PRIVATE py from py", 10)
    assert bob.said("QUARK_PRIVATE") == []
    # The user list follows a leave.
    py.close()
    wait_until(lambda: alice.said("QUARK_PEERS")[-1] == "alice,bob", 10, "no leave seen")


def test_a_wrong_password_reaches_on_failure_with_its_code(
    router: RouterProcess, group: str, tmp_path: Path, sclangs: list[PeerProgram]
) -> None:
    Client(router.osc10_port).join("eve", group, password="right")
    eve = start(sclangs, "member.scd", tmp_path, router.osc10_port, group, "eve")
    failed = eve.wait_for("QUARK_FAILED", 60)
    assert failed.split("QUARK_FAILED", 1)[1].split()[0] == "auth_failed"
    assert "wrong password" in failed
    eve.wait_for("QUARK_JOIN_FAILED auth_failed", 5)
    assert "QUARK_JOINED" not in eve.output()


def test_a_member_whose_connection_is_cut_comes_back_with_what_it_missed(
    router: RouterProcess, group: str, tmp_path: Path, sclangs: list[PeerProgram]
) -> None:
    ss = require_program("ss")
    py = Client(router.osc10_port).join("py", group)
    alice = start(sclangs, "member.scd", tmp_path, router.osc10_port, group, "alice")
    local_port = alice.wait_for("QUARK_JOINED", 60).split("QUARK_JOINED", 1)[1].strip()
    time.sleep(1.0)  # its session granted
    py.drain(0.3)
    for number in range(5):
        py.send(msg("/note", "py", number))
    wait_until(lambda: len(alice.said("QUARK_GOT")) == 5, 10, "the first notes never came")
    # Its TCP connection killed from outside, as a Wi-Fi drop does; the group plays on.
    subprocess.run(
        [ss, "-K", "src", "127.0.0.1", "sport", "=", f":{local_port}"],
        check=True,
        capture_output=True,
    )
    for number in range(5, 30):
        py.send(msg("/note", "py", number))
        time.sleep(0.02)
    alice.wait_for("QUARK_RESUMED", 20)
    for number in range(30, 35):
        py.send(msg("/note", "py", number))
    wait_until(lambda: len(alice.said("QUARK_GOT")) >= 35, 10, "notes missing after the drop")
    assert alice.said("QUARK_GOT") == [f"py {n}" for n in range(35)]  # all, in order, once
    assert not [p for p in py.drain(0.5) if p.address == "/oscrouter/userlist"]  # never left


def test_synctext_syncs_a_text_between_two_sclang_processes(
    router: RouterProcess, group: str, tmp_path: Path, sclangs: list[PeerProgram]
) -> None:
    writer = start(
        sclangs, "synctext.scd", tmp_path, router.osc10_port, group, "ada", TCPOSC_TEXT="s.boot;"
    )
    writer.wait_for("SYNC_WRITTEN", 60)
    reader = start(sclangs, "synctext.scd", tmp_path, router.osc10_port, group, "ben")
    assert reader.wait_for("SYNC_TEXT", 60).endswith("SYNC_TEXT s.boot;")


def _report_socket() -> tuple[socket.socket, int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(1.0)
    return sock, sock.getsockname()[1]


def test_two_clocks_and_a_python_client_agree_on_the_beat_and_patterns_play_together(
    router: RouterProcess, group: str, tmp_path: Path, sclangs: list[PeerProgram]
) -> None:
    py = Client(router.osc10_port)
    py.send(msg("/oscrouter/register", "py", "pw", group, "gpw"))
    line = None
    while line is None:
        packet = py.recv(5)
        line = read_tempo_message(packet.raw) if packet.address == "/oscrouter/tempo" else None
    reports, port = _report_socket()
    peers = [
        start(
            sclangs, "clock.scd", tmp_path, router.osc10_port, group, name, TCPOSC_REPORT=str(port)
        )
        for name in ("c1", "c2")
    ]
    for peer in peers:
        peer.wait_for("CLOCK_READY", 60)

    def beat_at(at: float) -> float:
        t0, beat0, bpm, _, _ = line
        return beat0 + (at - t0) * bpm / 60.0

    apart: list[float] = []  # ms between a clock's beats and the group's, at the same moment
    events: dict[str, list[float]] = {"c1": [], "c2": []}
    deadline = time.monotonic() + 25
    while time.monotonic() < deadline and min(len(e) for e in events.values()) < 6:
        try:
            data = reports.recv(65536)
        except TimeoutError:
            continue
        bundle = OscBundle(data)
        message = next(iter(bundle))
        assert isinstance(message, OscMessage)
        user, beats = message.params[0], float(message.params[1])
        at = float(bundle.timestamp)  # Unix time, from the time tag
        if message.address == "/beats":
            apart.append(abs(beats - beat_at(at)) * 60.0 / line[2] * 1000.0)
        else:
            events[str(user)].append(beats)
    reports.close()
    assert len(apart) >= 60, apart
    apart.sort()
    assert apart[int(len(apart) * 0.99) - 1] < 2.0, apart[-10:]  # within 2 ms (p99)
    # Each clock's pattern plays its events on whole beats, the same ones on both.
    for played in events.values():
        assert played and all(abs(beat - round(beat)) < 1e-6 for beat in played), played
    shared = set(map(round, events["c1"])) & set(map(round, events["c2"]))
    assert len(shared) >= 4, events
    print(f"clocks apart p50 {apart[len(apart) // 2]:.3f} ms, largest {apart[-1]:.3f} ms")
    # A clock's tempo_ sets the group's, for every member.
    py.send(msg("/clock/tempo", 3.0))  # 3 beats a second
    changed = None
    while changed is None:
        packet = py.recv_until("/oscrouter/tempo", 10)
        changed = read_tempo_message(packet.raw)
    assert changed[2] == 180.0
    # At the next bar: a line told ahead, from a bar's first beat; then the transport stops.
    py.send(msg("/clock/nextbar", 2.0))
    ahead = read_tempo_message(py.recv_until("/oscrouter/tempo", 10).raw)
    while ahead is not None and ahead[2] == 180.0:  # the other clock's copy of the change
        ahead = read_tempo_message(py.recv_until("/oscrouter/tempo", 10).raw)
    assert ahead is not None and ahead[2] == 120.0 and ahead[1] % 4 == 0 and ahead[0] > time.time()
    py.send(msg("/clock/play", 0))
    stopped = read_tempo_message(py.recv_until("/oscrouter/tempo", 10).raw)
    while stopped is not None and stopped[4] == 1:  # the other clock's copy of the change
        stopped = read_tempo_message(py.recv_until("/oscrouter/tempo", 10).raw)
    assert stopped is not None and stopped[4] == 0


def test_sclang_joins_through_the_one_port(
    start_router: Callable[..., RouterProcess],
    group: str,
    tmp_path: Path,
    sclangs: list[PeerProgram],
) -> None:
    port = free_port()
    router = start_router("--port", str(port))
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    py = Client(port).join("py", group)
    member = start(sclangs, "member.scd", tmp_path, port, group, "sc")
    member.wait_for("QUARK_JOINED", 60)
    py.drain(0.3)
    py.send(msg("/quark/send", 9))
    assert py.recv_until("/note").args == ["sc", 9]
    assert router.process.poll() is None


def test_a_list_of_routers_is_tried_in_turn(
    router: RouterProcess, group: str, tmp_path: Path, sclangs: list[PeerProgram]
) -> None:
    nobody = free_port()  # no router there: the client goes on to the next
    servers = f"127.0.0.1:{nobody},127.0.0.1:{router.osc10_port}"
    py = Client(router.osc10_port).join("py", group)
    member = start(
        sclangs, "member.scd", tmp_path, router.osc10_port, group, "sc", TCPOSC_SERVERS=servers
    )
    member.wait_for("QUARK_JOINED", 60)
    assert f"could not connect to 127.0.0.1:{nobody}" in member.output()
    py.drain(0.3)
    py.send(msg("/quark/send", 4))
    assert py.recv_until("/note").args == ["sc", 4]


def test_a_member_whose_link_goes_silent_notices_and_is_back_with_what_it_missed(
    router: RouterProcess, group: str, tmp_path: Path, sclangs: list[PeerProgram]
) -> None:
    relay = FreezableRelay(router.osc10_port)
    try:
        py = Client(router.osc10_port).join("py", group)
        alice = start(sclangs, "member.scd", tmp_path, relay.port, group, "alice")
        alice.wait_for("QUARK_JOINED", 60)
        time.sleep(1.0)
        py.drain(0.3)
        relay.freeze()  # no FIN, no reset: only silence
        frozen_at = time.monotonic()
        for number in range(10):
            py.send(msg("/note", "py", number))
            time.sleep(0.1)
        alice.wait_for("QUARK_RESUMED", 30)
        noticed = time.monotonic() - frozen_at
        wait_until(lambda: len(alice.said("QUARK_GOT")) >= 10, 10, "notes missing")
        assert alice.said("QUARK_GOT") == [f"py {n}" for n in range(10)]
        assert noticed < 20, noticed
        print(f"the quark was back {noticed:.1f} s after its link went silent")
    finally:
        relay.close()

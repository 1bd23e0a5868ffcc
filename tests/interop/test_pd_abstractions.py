"""The Pure Data abstractions (puredata/tcposcrouter) in headless Pd processes against the real
router: two members exchange messages, private messages and user lists and follow one tempo
(their beats at the same moments, a change at the next bar on both); a member whose connection
is cut is back with every message it missed; a wrong password reaches the status outlet."""

from __future__ import annotations

import itertools
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.client import Client
from support.osc import msg
from support.peers import PeerProgram, require_program
from support.process import RouterProcess, wait_until
from support.relay import FreezableRelay

pytestmark = pytest.mark.timeout(180)

REPOSITORY = Path(__file__).resolve().parents[2]
ABSTRACTIONS = REPOSITORY / "puredata" / "tcposcrouter"
TEMPLATE = Path(__file__).parent / "peers" / "pd_member.pd.in"


@pytest.fixture
def pds() -> Iterator[list[PeerProgram]]:
    started: list[PeerProgram] = []
    yield started
    for peer in started:
        peer.stop()
        print(peer.output())


def member(
    started: list[PeerProgram],
    tmp_path: Path,
    port: int,
    group: str,
    user: str,
    password: str = "pw",
) -> PeerProgram:
    pd = require_program("pd")
    patch = tmp_path / f"{user}.pd"
    patch.write_text(
        TEMPLATE.read_text()
        .replace("@ABSTRACTIONS@", str(ABSTRACTIONS))
        .replace("@USER@", user)
        .replace("@PASSWORD@", password)
        .replace("@GROUP@", group)
        .replace("@PORT@", str(port))
    )
    command = [pd, "-nogui", "-nosound", "-nomidi", "-stderr", "-open", str(patch)]
    peer = PeerProgram(command, dict(os.environ))
    started.append(peer)
    return peer


def test_two_pd_members_play_together_and_follow_one_tempo(
    router: RouterProcess, group: str, tmp_path: Path, pds: list[PeerProgram]
) -> None:
    py = Client(router.osc10_port).join("py", group)
    alice = member(pds, tmp_path, router.osc11_port, group, "alice")
    bob = member(pds, tmp_path, router.osc10_port, group, "bob")  # SLIP on the other port too
    for peer in (alice, bob):
        peer.wait_for("PD_STATUS: joined", 30)

    def everyone_listed() -> bool:
        return all(
            (lists := p.printed("PD_USERS:")) and lists[-1][1] == "py alice bob"
            for p in (alice, bob)
        )

    wait_until(everyone_listed, 10, "the user lists never showed everyone")
    assert [s for _, s in alice.printed("PD_STATUS:")].count("joined") == 1
    py.drain(0.3)
    py.send(msg("/alice/send", 5))
    assert py.recv_until("/note").args == ["alice", 5.0]
    bob.wait_for("PD_GOT: note alice 5", 10)
    py.send(msg("/bob/private"))
    private = py.recv_until("/oscrouter/private")
    assert private.args == ["bob", "/psst", "bob"]
    py.send(msg("/oscrouter/private", "alice", "/hi", 1))
    alice.wait_for("PD_PRIVATE: py /hi 1", 10)

    # One tempo: both members' beats come at the same moments.
    time.sleep(3)
    a = dict((beat, at) for at, beat in alice.printed("PD_BEAT:"))
    b = dict((beat, at) for at, beat in bob.printed("PD_BEAT:"))
    shared = sorted(set(a) & set(b), key=float)
    assert len(shared) >= 4, (a, b)
    apart = sorted(abs(a[beat] - b[beat]) * 1000 for beat in shared)
    assert apart[-1] < 20, apart  # ms, through each Pd's own scheduler and stdout
    middle, largest = apart[len(apart) // 2], apart[-1]
    print(
        f"Pd beats apart over {len(apart)} beats: median {middle:.2f} ms, largest {largest:.2f} ms"
    )
    # A change at the next bar reaches both before it, and both take it there.
    now_beat = float(shared[-1])
    bar = (now_beat // 4 + 2) * 4
    py.send(msg("/oscrouter/tempo/set", 180.0, bar))
    for peer in (alice, bob):
        told = peer.wait_for(f"PD_TEMPO: {int(bar)} 180 4 1", 5)
        assert 0 < float(told.split()[-1]) < 6
    wait_until(
        lambda: len([1 for _, beat in bob.printed("PD_BEAT:") if float(beat) >= bar + 4]) > 0,
        10,
        "no beats after the change",
    )
    for peer in (alice, bob):
        after = [(at, float(beat)) for at, beat in peer.printed("PD_BEAT:") if float(beat) >= bar]
        gaps = [later[0] - earlier[0] for earlier, later in itertools.pairwise(after)]
        assert gaps and all(abs(gap - 1 / 3) < 0.03 for gap in gaps), gaps  # 180 bpm


def test_a_pd_member_whose_connection_is_cut_is_back_with_what_it_missed(
    router: RouterProcess, group: str, tmp_path: Path, pds: list[PeerProgram]
) -> None:
    ss = require_program("ss")
    py = Client(router.osc10_port).join("py", group)
    alice = member(pds, tmp_path, router.osc11_port, group, "alice")
    alice.wait_for("PD_STATUS: joined", 30)
    time.sleep(1.0)  # its session granted
    py.drain(0.3)
    listing = subprocess.run([ss, "-tnp"], capture_output=True, text=True, check=True).stdout
    (line,) = [
        row for row in listing.splitlines() if f":{router.osc11_port} " in row and '"pd"' in row
    ]
    local_port = line.split()[3].rsplit(":", 1)[1]
    subprocess.run(
        [ss, "-K", "src", "127.0.0.1", "sport", "=", f":{local_port}"],
        check=True,
        capture_output=True,
    )
    for number in range(20):
        py.send(msg("/note", "py", number))
        time.sleep(0.02)
    alice.wait_for("PD_STATUS: resumed", 15)
    py.send(msg("/note", "py", 20))
    wait_until(lambda: len(alice.printed("PD_GOT: note")) >= 21, 10, "notes missing")
    assert [s for _, s in alice.printed("PD_GOT:")] == [f"note py {n}" for n in range(21)]
    assert not [p for p in py.drain(0.5) if p.address == "/oscrouter/userlist"]  # never left


def test_a_wrong_password_reaches_the_status_outlet(
    router: RouterProcess, group: str, tmp_path: Path, pds: list[PeerProgram]
) -> None:
    Client(router.osc10_port).join("eve", group, password="right")
    eve = member(pds, tmp_path, router.osc11_port, group, "eve", password="wrong")
    refused = eve.wait_for("PD_STATUS: list error auth_failed", 30)
    assert "wrong" in refused
    assert "PD_STATUS: joined" not in eve.output()


def test_the_help_patches_and_the_example_open_and_the_example_plays_on_the_beats(
    router: RouterProcess, group: str, tmp_path: Path, pds: list[PeerProgram]
) -> None:
    pd = require_program("pd")
    for patch in (
        ABSTRACTIONS / "tcposcrouter-help.pd",
        ABSTRACTIONS / "tcposcrouter-beat-help.pd",
    ):
        opened = PeerProgram(
            [
                pd,
                "-nogui",
                "-nosound",
                "-nomidi",
                "-stderr",
                "-open",
                str(patch),
                "-send",
                "pd quit",
            ],
            dict(os.environ),
        )
        pds.append(opened)
        opened.process.wait(20)
        assert "couldn't create" not in opened.output(), opened.output()
    py = Client(router.osc10_port).join("py", group)
    example = REPOSITORY / "examples" / "puredata" / "play-in-time.pd"
    sends = [
        f"tcposcrouter-play join pd pw {group} gpw",
        f"tcposcrouter-play connect 127.0.0.1 {router.osc11_port}",
    ]
    command = [pd, "-nogui", "-nosound", "-nomidi", "-stderr", "-open", str(example)]
    for send in sends:
        command += ["-send", send]
    player = PeerProgram(command, dict(os.environ))
    pds.append(player)
    player.wait_for("status: joined", 30)
    assert "couldn't create" not in player.output()
    wait_until(lambda: len(player.printed("beat:")) >= 3, 10, "no beats")
    beats = [float(beat) for _, beat in player.printed("beat:")]
    assert beats[:3] == [beats[0], beats[0] + 1, beats[0] + 2]
    py.send(msg("/note", 60))
    player.wait_for("from-the-group: note 60", 10)


def test_a_pd_member_whose_link_goes_silent_notices_and_is_back_with_what_it_missed(
    router: RouterProcess, group: str, tmp_path: Path, pds: list[PeerProgram]
) -> None:
    relay = FreezableRelay(router.osc11_port)
    try:
        py = Client(router.osc10_port).join("py", group)
        alice = member(pds, tmp_path, relay.port, group, "alice")
        alice.wait_for("PD_STATUS: joined", 30)
        time.sleep(1.0)
        py.drain(0.3)
        relay.freeze()  # no FIN, no reset: only silence
        frozen_at = time.monotonic()
        for number in range(10):
            py.send(msg("/note", "py", number))
            time.sleep(0.1)
        alice.wait_for("PD_STATUS: resumed", 30)
        noticed = alice.printed("PD_STATUS: dropped")[0][0] - frozen_at
        assert noticed < 15, noticed
        wait_until(lambda: len(alice.printed("PD_GOT: note")) >= 10, 10, "notes missing")
        assert [s for _, s in alice.printed("PD_GOT:")] == [f"note py {n}" for n in range(10)]
        print(f"Pd noticed the silent link after {noticed:.1f} s")
    finally:
        relay.close()

"""The ready-to-use examples in examples/, run as a musician runs them, against the real router:
the SuperCollider script in a headless sclang and the Pd patch in a headless Pd, each joining a
group, hearing it, playing into it, and saying why when the router refuses it."""

from __future__ import annotations

import time
from pathlib import Path

from support.client import Client
from support.osc import msg, register
from support.peers import PeerProgram, require_program, sclang_program
from support.process import RouterProcess

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_the_supercollider_example_joins_hears_plays_and_is_told_a_refusal(
    router: RouterProcess, group: str, tmp_path: Path
) -> None:
    py = Client(router.osc10_port).join("py", group, group_password="band-pass")
    # The example as it is, plus what a musician would type after it: ~send and ~private.
    script = tmp_path / "play.scd"
    script.write_text(
        f'(\n"{EXAMPLES / "supercollider" / "join-a-group.scd"}".load;\n'
        "OSCdef(\\go, { ~send.('/from/example', 7, \"seven\"); ~private.('py', '/psst', 2) },"
        " '/test/go');\n)\n"
    )
    settings = {
        "TCPOSCROUTER_PORT": str(router.osc10_port), "TCPOSCROUTER_USER": "sc",
        "TCPOSCROUTER_GROUP": group, "TCPOSCROUTER_GROUP_PASSWORD": "band-pass",
    }  # fmt: skip
    sc = sclang_program(script, tmp_path, settings)
    try:
        sc.wait_for(f"joined {group} as sc on 127.0.0.1:{router.osc10_port}", timeout=60)
        sc.wait_for("in the group: py, sc")
        assert py.recv_until("/oscrouter/userlist").args == ["py", "sc"]
        py.send(msg("/note", 62, 0.5))
        sc.wait_for("note from the group: [ 62, 0.5 ]")
        py.send(msg("/oscrouter/private", "sc", "/hi", 1))
        sc.wait_for("private from py: [ /hi, 1 ]")
        py.send(msg("/test/go"))
        assert py.recv_until("/from/example").raw == msg("/from/example", 7, "seven")
        private = py.recv_until("/oscrouter/private")
        assert private.args == ["sc", "/psst", 2]
    finally:
        sc.stop()
        print(sc.output())

    wrong = sclang_program(
        EXAMPLES / "supercollider" / "join-a-group.scd", tmp_path,
        {**settings, "TCPOSCROUTER_GROUP_PASSWORD": "not-the-band's"},
    )  # fmt: skip
    try:
        refused = wrong.wait_for("the router refused: auth_failed: ", timeout=60)
        assert f"wrong password for group {group}" in refused
        wrong.wait_for("check the user and group passwords")
    finally:
        wrong.stop()


def pd_example(port: int, *messages: str) -> PeerProgram:
    """The example patch in a headless Pd, with `messages` sent to [r tcposcrouter] at start,
    as its message boxes would."""
    pd = require_program("pd")
    sends = [arg for message in messages for arg in ("-send", f"tcposcrouter {message}")]
    patch = EXAMPLES / "puredata" / "join-a-group.pd"
    command = [pd, "-nogui", "-nosound", "-nomidi", "-stderr", *sends, "-open", str(patch)]
    return PeerProgram(command, {})


def test_the_pd_example_joins_hears_plays_and_is_told_a_refusal(
    router: RouterProcess, group: str
) -> None:
    py = Client(router.osc10_port)
    py.send(register("py", group, password="pw", group_password="gpw"))
    py.recv_until("/oscrouter/userlist")
    port = router.osc11_port
    pd = pd_example(
        port, f"join pd pw {group} gpw", f"connect 127.0.0.1 {port}",
        "send hello 1 2.5 three", "private py /psst 3",
    )  # fmt: skip
    try:
        pd.wait_for("router-status: 1")
        pd.wait_for("joined: pd 0")
        pd.wait_for("in-the-group: py pd")
        assert py.recv_until("/hello").raw == msg("/hello", 1.0, 2.5, "three")
        assert py.recv_until("/oscrouter/private").args == ["pd", "/psst", 3.0]
        py.send(msg("/note", 60, 0.5))
        pd.wait_for("from-group: note 60 0.5")
    finally:
        pd.stop()
        print(pd.output())

    refused = pd_example(port, f"join pd2 pw {group} not-gpw", f"connect 127.0.0.1 {port}")
    try:
        line = refused.wait_for("router-refused: auth_failed")
        assert "wrong" in line and group in line
        refused.wait_for("router-status: 0")  # the router closed the connection after saying why
    finally:
        refused.stop()


def test_the_quark_example_plays_on_the_groups_beats(
    router: RouterProcess, group: str, tmp_path: Path
) -> None:
    py = Client(router.osc10_port).join("py", group, group_password="band-pass")
    settings = {
        "TCPOSCROUTER_PORT": str(router.osc10_port), "TCPOSCROUTER_USER": "sc",
        "TCPOSCROUTER_GROUP": group, "TCPOSCROUTER_GROUP_PASSWORD": "band-pass",
    }  # fmt: skip
    quark = EXAMPLES.parent / "supercollider" / "TcpOscRouter" / "Classes"
    sc = sclang_program(
        EXAMPLES / "supercollider" / "play-in-time.scd", tmp_path, settings, classes=[quark]
    )
    try:
        sc.wait_for("in the group: py, sc", timeout=60)
        sc.wait_for("playing at 120.0 bpm, bars of 4 beats", timeout=20)
        deadline = time.monotonic() + 20
        while len(played := _beats(sc)) < 3:
            assert time.monotonic() < deadline, sc.output()
            time.sleep(0.2)
        # On whole beats of the group, one after the other, from a bar's first.
        first = played[0]
        assert first % 4 == 0 and played[:3] == [first, first + 1, first + 2]
        py.send(msg("/note", 62))
        sc.wait_for("note from the group: [ 62 ]")
    finally:
        sc.stop()
        print(sc.output())


def _beats(sc: PeerProgram) -> list[float]:
    """The group beats the example's pattern printed, as it played them."""
    return [
        float(line.split("beat ", 1)[1])
        for line in sc.output().splitlines()
        if line.startswith("beat ")
    ]

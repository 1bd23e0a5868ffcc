"""Pure Data, headless: vanilla [netsend -b], [slipenc]/[slipdec], [oscformat]/[oscparse]."""

from __future__ import annotations

import os
import re
from pathlib import Path

from support.client import Client
from support.osc import msg, register
from support.peers import PeerProgram, require_program
from support.process import RouterProcess

PEERS = Path(__file__).parent / "peers"


def test_pd_registers_on_the_slip_port_and_talks_to_a_length_prefix_client(
    router: RouterProcess, group: str, tmp_path: Path
) -> None:
    pd = require_program("pd")
    py = Client(router.osc10_port)
    py.send(register("py", group, password="pw", group_password="gpw"))
    py.recv_until("/oscrouter/userlist")

    patch = tmp_path / "pd_client.pd"
    template = (PEERS / "pd_client.pd.in").read_text()
    patch.write_text(template.replace("@PORT@", str(router.osc11_port)).replace("@GROUP@", group))
    peer = PeerProgram(
        [pd, "-nogui", "-nosound", "-nomidi", "-stderr", "-open", str(patch)], dict(os.environ)
    )
    try:
        peer.wait_for("PD_STATUS: 1")
        # [oscformat] registers with four arguments: no randomId, so the reply says 0.
        peer.wait_for("PD_GOT: oscrouter register pd 0")
        assert py.recv_until("/oscrouter/userlist").args == ["py", "pd"]
        peer.wait_for("PD_GOT: oscrouter userlist py pd")

        py.send(msg("/to/pd", 7, 0.25, "hello"))
        peer.wait_for("PD_GOT: to pd 7 0.25 hello")
        answer = py.recv(timeout=5)
        # Pd sends every number as a float32 (docs/testing.md).
        assert (answer.address, answer.args) == ("/from/pd", [7.0, 0.25, "hello", "from-pd"])
        # Vanilla Pd's [oscparse] reads no `t` and no `d`: the group's tempo, told on joining
        # (docs/protocol.md §11), makes it print one line per such tag. Nothing else may be an
        # error.
        errors = [line for line in peer.output().splitlines() if "error" in line]
        assert all(re.fullmatch(r"error: oscparse: unknown tag '[td]' \(\d+\)", e) for e in errors)
        # Asked for, the tempo comes relative, as floats Pd reads (docs/protocol.md §11).
        py.send(msg("/to/relative"))
        told = peer.wait_for("PD_GOT: oscrouter tempo relative").split()
        beat, bpm, quantum, playing, in_seconds = map(float, told[-5:])
        assert (bpm, quantum, playing, in_seconds) == (120.0, 4.0, 1.0, 0.0) and beat > 0
        py.send(msg("/oscrouter/tempo/set", 90.0, 4.0 * (beat // 4 + 2)))
        change = peer.wait_for("relative " + str(int(4 * (beat // 4 + 2))) + " 90 4 1").split()
        assert 0 < float(change[-1]) < 6  # seconds until that bar
        assert [line for line in peer.output().splitlines() if "error" in line] == errors
    finally:
        peer.stop()
        print(peer.output())

"""`tcposcrouter-client send`, `listen` and `time` against the real router, each other,
python-osc's TCP client and the test client.

Drives cli/client.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from pythonosc.tcp_client import SimpleTCPClient

from support.client import Client
from support.osc import msg
from support.process import RouterProcess, free_port

COMMAND = [sys.executable, "-m", "tcposcrouter.cli.client"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args], capture_output=True, text=True, timeout=30,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


@contextmanager
def listening(*args: str) -> Iterator[list[str]]:
    """`listen` in the background; yields the lines it prints, as they come."""
    process = subprocess.Popen([*COMMAND, "listen", *args], stdout=subprocess.PIPE, text=True)
    lines: list[str] = []
    assert process.stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")))  # type: ignore[union-attr]
    reader.start()
    try:
        yield lines
    finally:
        process.terminate()
        process.wait(10)
        reader.join(10)
        process.stdout.close()


def wait_for(lines: list[str], count: int, timeout: float = 10) -> list[str]:
    deadline = time.monotonic() + timeout
    while len(lines) < count:
        assert time.monotonic() < deadline, f"only {lines}"
        time.sleep(0.02)
    return [line.rstrip("\n") for line in lines]


def joined(router: RouterProcess, user: str, group: str) -> list[str]:
    return ["--server", f"127.0.0.1:{router.osc10_port}", "--user", user, "--group", group,
            "--group-password", "gpw"]  # fmt: skip


def test_send_and_listen_to_each_other(router: RouterProcess, group: str) -> None:
    watcher = Client(router.osc10_port).join("watcher", group)
    with listening(*joined(router, "ears", group)) as lines:
        watcher.recv_until("/oscrouter/userlist")  # ears is in
        wait_for(lines, 1)  # its own user list came first
        sent = run("send", *joined(router, "mouth", group), "/note", "60", "0.5", "two words", "T")
        assert sent.returncode == 0, sent.stderr
        assert watcher.recv_until("/note").raw == msg("/note", 60, 0.5, "two words", True)
        bundle = run("send", *joined(router, "mouth", group), "--bundle", "/a 1", '/b "x y"')
        assert bundle.returncode == 0, bundle.stderr
        private = run("send", *joined(router, "mouth", group), "--to", "ears", "/psst", "1")
        assert private.returncode == 0, private.stderr
        printed = [line for line in wait_for(lines, 10) if not line.startswith("/oscrouter/user")]
        assert printed[:4] == [
            '/note ifsT 60 0.5 "two words" T',
            "@now /a i 1",
            '@now /b s "x y"',
            '/oscrouter/private ssi "mouth" "/psst" 1',
        ]


def test_listen_prints_what_python_osc_sends_and_json(router: RouterProcess, group: str) -> None:
    with listening(*joined(router, "ears", group), "--json") as lines:
        wait_for(lines, 1)
        client = SimpleTCPClient("127.0.0.1", router.osc10_port, mode="1.0")  # type: ignore[no-untyped-call]
        client.send_message("/oscrouter/register", ["py", "pw", group, "gpw", 5])
        time.sleep(0.2)
        client.send_message("/from/python", [1, 2.5, "s"])
        records = [json.loads(line) for line in wait_for(lines, 3)]
        assert records[-1] == {"address": "/from/python", "types": "ifs", "args": [1, 2.5, "s"]}
        client.close()  # type: ignore[no-untyped-call]


def test_time_on_loopback(router: RouterProcess, group: str) -> None:
    done = run("time", *joined(router, "clock", group), "--json")
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert abs(figures["offset_seconds"]) < 0.001
    assert figures["exchanges"] == 8
    human = run("time", *joined(router, "clock", group))
    assert human.stdout.startswith("offset ") and "round trip" in human.stdout


def test_exit_codes_say_what_went_wrong(router: RouterProcess, group: str) -> None:
    Client(router.osc10_port).join("taken", group, password="mine")
    refused = run("send", *joined(router, "taken", group), "--password", "not-mine", "/x")
    assert refused.returncode == 4 and "auth_failed" in refused.stderr
    nobody = run("send", "--server", f"127.0.0.1:{free_port()}", "/x")
    assert nobody.returncode == 3 and "cannot connect" in nobody.stderr
    syntax = run("send", *joined(router, "s", group), "no-slash")
    assert syntax.returncode == 2 and 'starts with "/"' in syntax.stderr
    assert run("send", "--server", "host:port", "/x").returncode == 2
    unknown = run("send", "--server", "no-such-host.invalid", "/x")  # the port is the default
    assert (
        unknown.returncode == 3 and "cannot find the host 'no-such-host.invalid'" in unknown.stderr
    )
    unwritable = run("record", "/no/such/folder/set.jsonl", "--seconds", "1")
    assert unwritable.returncode == 2
    assert (
        unwritable.stderr
        == "tcposcrouter-client record: /no/such/folder/set.jsonl: No such file or directory\n"
    )


def test_passwords_from_the_environment(router: RouterProcess, group: str) -> None:
    watcher = Client(router.osc10_port).join("watcher", group, group_password="secret-g")
    env = {"TCPOSCROUTER_PASSWORD": "secret-u", "TCPOSCROUTER_GROUP_PASSWORD": "secret-g"}
    server = ["--server", f"127.0.0.1:{router.osc10_port}", "--group", group, "--user", "env"]
    assert run("send", *server, "/e", env=env).returncode == 0
    assert watcher.recv_until("/e").raw == msg("/e")


def test_tempo_shows_sets_at_the_next_bar_and_refuses_a_bad_one(
    router: RouterProcess, group: str
) -> None:
    keeper = Client(router.osc10_port).join("keeper", group)  # the group lives on meanwhile
    shown = run("tempo", *joined(router, "cue", group), "--json")
    assert shown.returncode == 0, shown.stderr
    figures = json.loads(shown.stdout)
    assert (figures["bpm"], figures["quantum"], figures["playing"]) == (120.0, 4, True)
    assert figures["bar"] == int(figures["beat"] // 4) + 1
    changed = run("tempo", *joined(router, "cue", group), "--set", "90", "--next-bar")
    assert changed.returncode == 0, changed.stderr
    assert changed.stdout.startswith("90 bpm, 4 beats a bar, playing: beat ")
    told = keeper.recv_until("/oscrouter/tempo")
    _, beat0, bpm, quantum, playing = told.args
    assert (bpm, quantum, playing) == (90.0, 4, 1)
    assert isinstance(beat0, float) and beat0 % 4 == 0 and beat0 > 0
    stopped = run("tempo", *joined(router, "cue", group), "--stop")
    assert "stopped" in stopped.stdout
    refused = run("tempo", *joined(router, "cue", group), "--set", "5")
    assert refused.returncode == 2 and "bad_tempo" in refused.stderr


def test_tempo_follow_prints_each_change(router: RouterProcess, group: str) -> None:
    setter = Client(router.osc10_port).join("setter", group)
    process = subprocess.Popen(
        [*COMMAND, "tempo", "--follow", *joined(router, "ears", group)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("120 bpm")
        setter.send(msg("/oscrouter/tempo/set", 100.0))
        assert process.stdout.readline().startswith("100 bpm")
    finally:
        process.terminate()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


def test_state_sets_shows_and_clears(router: RouterProcess, group: str) -> None:
    keeper = Client(router.osc10_port).join("keeper", group)
    done = run("state", *joined(router, "desk", group), "--set", "/fader", "0.5")
    assert done.returncode == 0, done.stderr
    assert keeper.recv_until("/fader").raw == msg("/fader", 0.5)  # heard as the message itself
    run("state", *joined(router, "desk", group), "--set", "/scene", "s:intro")
    shown = run("state", *joined(router, "latecomer", group))
    assert shown.stdout.splitlines() == ["/fader f 0.5", '/scene s "intro"']
    as_json = run("state", *joined(router, "latecomer", group), "--json")
    assert json.loads(as_json.stdout.splitlines()[0]) == {
        "address": "/fader", "types": "f", "args": [0.5],
    }  # fmt: skip
    run("state", *joined(router, "desk", group), "--clear", "/fader")
    assert run("state", *joined(router, "latecomer", group)).stdout.splitlines() == [
        '/scene s "intro"'
    ]

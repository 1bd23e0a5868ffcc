"""The configuration file on the real router: pinned groups made with `tcposcrouter passwd`, a
closed router, and SIGHUP during traffic (nobody dropped, nothing lost, new settings in force,
a bad file refused and reported).

Drives server/passwords.py."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from support.client import Client
from support.osc import msg, register
from support.process import RouterProcess

MESSAGES = 600  # per sender, over about three seconds


def passwd(password: str) -> str:
    """A hash made as an operator makes it: `tcposcrouter passwd`, the password on stdin."""
    made = subprocess.run(
        [sys.executable, "-m", "tcposcrouter", "passwd"],
        input=password + "\n",
        capture_output=True,
        text=True,
        check=True,
    )
    return made.stdout.strip()


def refusal(port: int, user: str, group: str, group_password: str, password: str = "pw") -> str:
    client = Client(port)
    client.send(register(user, group, password=password, group_password=group_password))
    (reply, *_) = client.wait_closed(5)
    assert reply.address == "/oscrouter/error"
    return f"{reply.args[0]}: {reply.args[1]}"


def wait_for_log(router: RouterProcess, text: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in router.console():
        assert time.monotonic() < deadline, f"{text!r} never logged: {router.console()}"
        time.sleep(0.05)


def test_pinned_groups_and_a_closed_router(
    start_router: Callable[..., RouterProcess], tmp_path: Path
) -> None:
    config = tmp_path / "router.toml"
    config.write_text(
        "allow_new_groups = false\n"
        "[groups.workshop]\n"
        f'password = "{passwd("class of 2026")}"\n'
        'description = "Tuesday class"\n'
        "max_users = 2\n"
        "[groups.stage]\n"
        f'password = "{passwd("stagepw")}"\n'
        "[groups.stage.users]\n"
        f'alice = "{passwd("alice-pw")}"\n'
    )
    router = start_router("--config", str(config), "-v")
    port = router.osc10_port
    assert refusal(port, "ana", "worksh0p", "class of 2026") == (
        "auth_failed: no group worksh0p on this router, and it does not create new groups: "
        "check the group name"
    )
    assert refusal(port, "ana", "workshop", "guess").startswith("auth_failed: wrong password")
    ana = Client(port).join("ana", "workshop", group_password="class of 2026")
    ana.close()
    time.sleep(0.3)
    # Empty, and still its own: another password cannot take it.
    assert refusal(port, "eve", "workshop", "mine").startswith("auth_failed: wrong password")
    Client(port).join("ana", "workshop", group_password="class of 2026")
    Client(port).join("bob", "workshop", group_password="class of 2026")
    assert refusal(port, "carl", "workshop", "class of 2026").startswith("group_full")
    # Pinned users: the roster of "stage".
    assert refusal(port, "mallory", "stage", "stagepw").startswith(
        "auth_failed: group stage admits only its listed users"
    )
    assert refusal(port, "alice", "stage", "stagepw", password="pw").startswith(
        "auth_failed: wrong password for user alice"
    )
    alice = Client(port).join("alice", "stage", password="alice-pw", group_password="stagepw")
    alice.send(msg("/hello", 1))
    alice.expect_nothing()
    assert "group workshop is empty; it is pinned, so it stays" in router.log()


def play(sender: Client, name: str, stop_at: int) -> None:
    for number in range(stop_at):
        sender.send(msg(f"/from/{name}", number))
        time.sleep(0.005)


def listen(listener: Client, senders: list[str], heard: dict[str, list[int]]) -> None:
    deadline = time.monotonic() + 30
    while any(len(heard[s]) < MESSAGES for s in senders) and time.monotonic() < deadline:
        packet = listener.recv(10)
        if packet.address.startswith("/from/"):
            heard[packet.address[6:]].append(int(packet.args[0]))  # type: ignore[call-overload]


def test_sighup_during_traffic(
    start_router: Callable[..., RouterProcess], tmp_path: Path, group: str
) -> None:
    config = tmp_path / "router.toml"
    config.write_text("max_users_per_group = 10\n")
    router = start_router("--config", str(config))
    port = router.osc10_port
    names = ["ana", "bob", "carl", "dora"]
    clients = {name: Client(port).join(name, group) for name in names}
    for client in clients.values():
        client.drain()
    senders = ["ana", "bob"]
    heard: dict[str, dict[str, list[int]]] = {n: {s: [] for s in senders} for n in names}
    threads = [threading.Thread(target=play, args=(clients[s], s, MESSAGES)) for s in senders] + [
        threading.Thread(target=listen, args=(clients[n], [s for s in senders if s != n], heard[n]))
        for n in names
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.8)
    stage = passwd("stagepw")
    config.write_text(
        f'max_users_per_group = 4\nverbose = 1\n[groups.stage]\npassword = "{stage}"\n'
    )
    router.process.send_signal(signal.SIGHUP)
    wait_for_log(router, "reloaded: limits, pinned groups (stage), new groups allowed")
    # The new limit, with four already in: a fifth is refused; the four play on.
    assert refusal(port, "eve", group, "gpw").startswith("group_full")
    # The new pinned group is there, with its password.
    assert refusal(port, "eve", "stage", "not it").startswith("auth_failed")
    Client(port).join("eve", "stage", group_password="stagepw")
    # A bad file is refused, and the running settings stay.
    config.write_text("max_users_per_group = -1\nmax_conections = 3\n")
    router.process.send_signal(signal.SIGHUP)
    wait_for_log(router, "reload refused, the running settings stay")
    assert f"{config}:1: max_users_per_group:" in router.console()
    assert f"{config}:2: max_conections: no such setting" in router.console()
    assert refusal(port, "eve", group, "gpw").startswith("group_full")
    assert refusal(port, "zed", "stage", "not it").startswith("auth_failed")
    for thread in threads:
        thread.join(40)
    # Everything arrived, in order, on every connection, and nobody was dropped.
    for listener, by_sender in heard.items():
        for sender, numbers in by_sender.items():
            if sender != listener:
                assert numbers == list(range(MESSAGES)), (listener, sender, len(numbers))
    for client in clients.values():
        assert not client.closed
    clients["carl"].send(msg("/after", 1))
    assert clients["ana"].recv_until("/after").args == [1]
    # The reload turned on verbose: the console shows connection lines from then on only.
    console = router.console()
    assert "register eve@stage" in console and f"register ana@{group}" not in console

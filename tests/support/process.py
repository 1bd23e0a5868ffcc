"""Running the real router process: free ports, waiting until it listens, its memory and CPU."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from support.netns import Lab

__all__ = [
    "RouterProcess",
    "TwoWorkers",
    "cpu_seconds",
    "cpu_times",
    "free_port",
    "ipv6_loopback_works",
    "rss_kib",
    "start_router_process",
    "wait_until_listening",
    "wait_until_worker_listens",
    "with_children",
    "worker_pids",
]


# Every port handed out in this test process: the kernel gives a port back as soon as the
# asking socket is closed, and a Redis and a router started one after the other would otherwise
# be given the same one.
_HANDED_OUT: set[int] = set()


def free_port(lab: Lab | None = None) -> int:
    """A loopback port nothing listens on, in `lab`'s namespace if given (a port free out here
    may be the local end of a connection in there)."""
    while True:
        with (
            lab.inside() if lab else contextlib.nullcontext(),
            socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock,
        ):
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def ipv6_loopback_works() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    """Resident memory of process `pid` (or its peak, with field="VmHWM"), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def cpu_times(pids: Sequence[int]) -> tuple[float, float]:
    """The CPU time the processes `pids` have used so far, in user space and in the kernel; a
    process that has ended counts nothing."""
    user = system = 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        user += int(fields[11]) / ticks
        system += int(fields[12]) / ticks
    return user, system


def cpu_seconds(pids: Sequence[int]) -> float:
    """The CPU time (user and kernel) the processes `pids` have used so far."""
    return sum(cpu_times(pids))


def with_children(pid: int) -> list[int]:
    """`pid` and the processes it started (a router's --workers)."""
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [pid, *(int(child) for child in found.stdout.split())]


def wait_until(what: Callable[[], bool], timeout: float, message: str, poll: float = 0.05) -> None:
    """Return once `what()` is true; fail with `message` when `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, message
        time.sleep(poll)


def wait_until_listening(
    process: subprocess.Popen[bytes],
    ports: list[int],
    timeout: float = 15.0,
    lab: Lab | None = None,
) -> None:
    """Return once every port accepts a connection (in `lab`, if given); raise if the process
    exits or time runs out (the process is then killed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the process exited with {process.returncode}")
        try:
            with lab.inside() if lab else contextlib.nullcontext():
                for port in ports:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    process.kill()
    process.wait()
    raise RuntimeError(f"nothing listened on {ports} within {timeout:g} s")


@dataclass
class RouterProcess:
    process: subprocess.Popen[bytes]
    osc10_port: int
    osc11_port: int
    log_dir: Path
    http_port: int | None = None  # None: started with --no-http
    admin_token: str = ""

    @property
    def http(self) -> str:
        """The router's HTTP side, for aiohttp, browsers and curl."""
        assert self.http_port is not None, "this router was started with --no-http"
        return f"http://127.0.0.1:{self.http_port}"

    def console(self) -> str:
        """What the router printed on its console (stdout and stderr)."""
        return (self.log_dir / "console.txt").read_text()

    def log(self) -> str:
        path = self.log_dir / "tcposcrouter.log"
        return path.read_text() if path.exists() else ""

    def rss_kib(self) -> int:
        return rss_kib(self.process.pid)

    def stop(self, signum: signal.Signals = signal.SIGTERM, timeout: float = 10) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signum)
        return self.process.wait(timeout)


def start_router_process(
    tmp: Path,
    *extra: str,
    ipv6: bool = True,
    also_on: Sequence[str] = (),
    lab: Lab | None = None,
) -> RouterProcess:
    """Start `python -m tcposcrouter` on two free loopback ports (and the addresses `also_on`),
    logging into `tmp`; in the namespace `lab`, if given (its clients are made inside it)."""
    osc10, osc11 = free_port(lab), free_port(lab)
    http_port = None if "--no-http" in extra else free_port(lab)
    http = [] if http_port is None else ["--http-port", str(http_port)]
    token = "" if "--admin-token" in extra else f"admin-{osc10}"
    http += ["--admin-token", token] if token else []
    ipv6 = ipv6 and lab is None and ipv6_loopback_works()
    hosts = ["--host", "127.0.0.1"] + (["--host", "::1"] if ipv6 else [])
    for address in also_on:
        hosts += ["--host", address]
    log_dir = tmp / f"log-{osc10}"
    log_dir.mkdir(parents=True)
    with open(log_dir / "console.txt", "wb") as console:
        command = [
            sys.executable, "-m", "tcposcrouter",
            "--osc-port", str(osc10), "--osc11-port", str(osc11),
            *hosts, *http, "--log-dir", str(log_dir), *extra,
        ]  # fmt: skip
        process = subprocess.Popen(
            lab.command(*command) if lab else command,
            stdout=console,
            stderr=subprocess.STDOUT,
        )
    router = RouterProcess(process, osc10, osc11, log_dir, http_port, token)
    ports = [] if http_port is None else [http_port]
    ports += [
        port
        for port, flags in (
            (osc10, ("--no-osc10", "--disable-osc10")),
            (osc11, ("--no-osc11", "--disable-osc11")),
        )
        if not set(flags) & set(extra)
    ]
    try:
        wait_until_listening(process, ports, lab=lab)
    except RuntimeError as exc:
        raise RuntimeError(f"{exc}: {router.console()}") from None
    return router


def wait_until_worker_listens(log: Path, port: int, times: int = 1, timeout: float = 20.0) -> None:
    """Until the --workers worker logging to `log` has opened its ports `times` times (once
    more each time it is started again). A port accepting says only that *a* worker listens:
    until both do, the kernel gives every connection to the first."""
    deadline = time.monotonic() + timeout
    while True:
        text = log.read_text() if log.exists() else ""
        if text.count(f"listening on 127.0.0.1:{port} ") >= times:
            return
        assert time.monotonic() < deadline, f"{log.name}: not listening on {port}:\n{text}"
        time.sleep(0.05)


def worker_pids(node: str) -> list[int]:
    """The processes of the --workers worker named `node` (the supervisor gives each worker
    `--node-id NODE --reuse-port`)."""
    found = subprocess.run(
        ["pgrep", "-f", "--", f"--node-id {node} --reuse-port"], capture_output=True, text=True
    )
    return [int(pid) for pid in found.stdout.split()]


class TwoWorkers:
    """`tcposcrouter --workers 2`, each worker logging to a file of its own."""

    def __init__(self, folder: Path) -> None:
        self.osc, self.http = free_port(), free_port()
        self.logs = folder / "logs"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tcposcrouter", "--host", "127.0.0.1",
             "--osc-port", str(self.osc), "--disable-osc11", "--http-port", str(self.http),
             "--admin-token", "token", "--workers", "2", "--node-id", "tempo",
             "--log-dir", str(self.logs), "-v"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until_listening(self.process, [self.osc, self.http])
        for index in (1, 2):
            wait_until_worker_listens(self.logs / f"tcposcrouter-tempo-{index}.log", self.http)

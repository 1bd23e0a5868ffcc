"""A network namespace joined to this one by a veth pair: a laptop (or a classroom behind one
NAT address) whose network the test can break without FIN or RST.

Needs root, `ip` and, for `drop_ports`, `nft`. Every name carries the process id and a counter,
so parallel runs never collide, and everything is removed on exit.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = ["Lab", "Namespace", "lab", "namespace", "namespaces_work"]

_CLONE_NEWNET = 0x40000000
_counter = itertools.count(1)
_libc = ctypes.CDLL(None, use_errno=True)


def namespaces_work() -> str | None:
    """None if this machine can make namespaces, else why not."""
    if os.geteuid() != 0:
        return "making network namespaces needs root"
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    return None


def _run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, timeout=10)


@dataclass
class Namespace:
    name: str
    host_link: str  # our end of the veth pair
    host_ip: str  # the router listens here
    inner_ip: str  # the laptop's (or the NAT's) address

    def run(self, *command: str) -> None:
        _run("ip", "netns", "exec", self.name, *command)

    @contextmanager
    def inside(self) -> Iterator[None]:
        """Sockets made in this block live in the namespace (for this thread, until it ends)."""
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        there = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
        try:
            if _libc.setns(there, _CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns into the test namespace failed")
            try:
                yield
            finally:
                if _libc.setns(home, _CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns back home failed")
        finally:
            os.close(home)
            os.close(there)

    def connect(self, port: int, source_port: int = 0) -> socket.socket:
        """A TCP connection from inside to the router at `host_ip`."""
        with self.inside():
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.inner_ip, source_port))
            sock.settimeout(5)
            sock.connect((self.host_ip, port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def vanish(self) -> None:
        """The link goes down: from now on everything is dropped silently, both ways."""
        _run("ip", "link", "set", self.host_link, "down")

    def drop_ports(self, first: int, last: int) -> None:
        """Drop, silently, every packet of connections whose local port inside is in
        first..last: what a NAT does to connections whose mapping it lost."""
        table = f"inet lost{os.getpid()}"
        self.run("nft", "add", "table", *table.split())
        for chain, hook, match in (("in", "input", "dport"), ("out", "output", "sport")):
            spec = f"{{ type filter hook {hook} priority 0 ; }}"
            self.run("nft", "add", "chain", *table.split(), chain, spec)
            self.run("nft", "add", "rule", *table.split(), chain, "tcp", match, f"{first}-{last}",
                     "drop")  # fmt: skip


@contextmanager
def namespace() -> Iterator[Namespace]:
    number = next(_counter)
    tag = f"{os.getpid() % 100_000}x{number}"
    name = f"tcpoutest{tag}"
    host_link, inner_link = f"th{tag}", f"ti{tag}"
    # A /30 of its own in 10.200-254.x.y, from the process id and the counter.
    seed = (os.getpid() * 16 + number) % (55 * 256 * 64)
    base = f"10.{200 + seed // (256 * 64)}.{(seed // 64) % 256}.{(seed % 64) * 4}"
    prefix = base.rsplit(".", 1)[0]
    last = int(base.rsplit(".", 1)[1])
    host_ip, inner_ip = f"{prefix}.{last + 1}", f"{prefix}.{last + 2}"
    try:
        _run("ip", "netns", "add", name)
        _run("ip", "link", "add", host_link, "type", "veth", "peer", "name", inner_link)
        _run("ip", "link", "set", inner_link, "netns", name)
        _run("ip", "addr", "add", f"{host_ip}/30", "dev", host_link)
        _run("ip", "link", "set", host_link, "up")
        space = Namespace(name, host_link, host_ip, inner_ip)
        space.run("ip", "addr", "add", f"{inner_ip}/30", "dev", inner_link)
        space.run("ip", "link", "set", inner_link, "up")
        space.run("ip", "link", "set", "lo", "up")
        # Ephemeral ports well away from the ones a test binds on purpose.
        space.run("sysctl", "-q", "-w", "net.ipv4.ip_local_port_range=50000 60000")
        yield space
    finally:
        subprocess.run(["ip", "link", "del", host_link], capture_output=True, timeout=10)
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)


@dataclass
class Lab:
    """A namespace with only its loopback: processes started in it (`command`) and sockets
    made `inside` it see one another, and `cut` drops the traffic to one of its addresses
    silently, as a broken network would, without touching this machine's own network."""

    name: str

    def command(self, *command: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *command]

    @contextmanager
    def inside(self) -> Iterator[None]:
        with Namespace(self.name, "", "", "").inside():
            yield

    def cut(self, address: str, port: int) -> None:
        """From now on every packet to or from `address`:`port` is dropped, both ways."""
        table = ("inet", "cut")
        _run(*self.command("nft", "add", "table", *table))
        spec = "{ type filter hook output priority 0 ; }"
        _run(*self.command("nft", "add", "chain", *table, "out", spec))
        for match in (
            ("ip", "daddr", address, "tcp", "dport"),
            ("ip", "saddr", address, "tcp", "sport"),
        ):
            _run(*self.command("nft", "add", "rule", *table, "out", *match, str(port), "drop"))

    def mend(self) -> None:
        _run(*self.command("nft", "delete", "table", "inet", "cut"))


@contextmanager
def lab() -> Iterator[Lab]:
    name = f"tcpoulab{os.getpid() % 100_000}x{next(_counter)}"
    try:
        _run("ip", "netns", "add", name)
        _run("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")
        yield Lab(name)
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)

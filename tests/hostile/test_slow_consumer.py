"""One member stops reading: it is dropped as a slow consumer, and nobody else notices."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable

from support.client import Client
from support.osc import osc_string, raw_message
from support.process import RouterProcess
from support.stats import summary_ms

PAYLOAD = osc_string("x" * 1000)
RATE = 2000  # messages per second


def timed(seq: int) -> bytes:
    return raw_message("/lat", ",ihs", struct.pack(">iq", seq, time.perf_counter_ns()) + PAYLOAD)


def send_paced(sender: Client, first: int, count: int, per_second: float) -> None:
    for seq in range(first, first + count):
        sender.send(timed(seq))
        if per_second:
            time.sleep(1 / per_second)


def receive_latencies(
    receiver: Client, first: int, count: int, user_lists: list[list[object]]
) -> list[float]:
    latencies = []
    for expected in range(first, first + count):
        packet = receiver.recv(timeout=5)
        while packet.address == "/oscrouter/userlist":
            user_lists.append(packet.args)
            packet = receiver.recv(timeout=5)
        seq, sent = struct.unpack(">iq", packet.raw[16:28])
        assert seq == expected, "lost or reordered"
        latencies.append((time.perf_counter_ns() - sent) / 1e6)
    return latencies


def test_a_stalled_reader_is_dropped_and_the_others_do_not_notice(
    start_router: Callable[..., RouterProcess], group: str
) -> None:
    router = start_router("--no-rate-limit", "--max-output-buffer", "262144")
    sender = Client(router.osc10_port).join("sender", group)
    listener = Client(router.osc10_port).join("listener", group)
    stalled = Client(router.osc10_port)
    stalled.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.join("stalled", group)
    for c in (sender, listener):
        c.drain(0.1)

    # Before: everybody reads.
    keep_reading = threading.Event()
    keep_reading.set()

    def read_while_allowed() -> None:
        while keep_reading.is_set():
            stalled.drain(0.01)

    reader = threading.Thread(target=read_while_allowed)
    reader.start()
    # 2,000 messages of 1 KB per second: 2 MB/s, enough to fill a stalled member's kernel
    # buffers and then its 256 KiB in the router within a few seconds.
    thread = threading.Thread(target=send_paced, args=(sender, 0, 2000, RATE))
    thread.start()
    user_lists: list[list[object]] = []
    before = receive_latencies(listener, 0, 2000, user_lists)
    thread.join()

    # Then one member stops reading while the sender goes on at the same pace.
    keep_reading.clear()
    reader.join()
    thread = threading.Thread(target=send_paced, args=(sender, 2000, 12_000, RATE))
    thread.start()
    during = receive_latencies(listener, 2000, 12_000, user_lists)
    thread.join()

    print(f"\nlistener latency while all read:         {summary_ms(before)}")
    print(f"listener latency while one member stalls: {summary_ms(during)}")
    assert max(during) < 1000, "the listener waited a second or more behind the stalled member"

    deadline = time.monotonic() + 10
    while "slow_consumer" not in router.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "error stalled@" in router.log() and "slow_consumer" in router.log()
    stalled.wait_closed(timeout=10)  # what the kernel had buffered, then the reset
    sender.send(timed(99_999))
    receive_latencies(listener, 99_999, 1, user_lists)
    assert user_lists[-1] == ["sender", "listener"]

"""The outbox: everything the router sends, framed once, queued per connection, written in one
go per turn of the event loop.

The hub puts packets into *mailboxes*, one per connection. A packet for many receivers is framed
once per framing in use, and the same `bytes` object goes into every mailbox. The shell calls
`flush()` once per turn of its event loop: each mailbox's queue then leaves as one `write` to
its `Sink` (one write per message for WebSocket, where a message is the framing), so a receiver
of four busy senders gets one write per turn instead of one per packet, while a lone message
still leaves in the turn it arrived. The outbox never writes anywhere itself except through the
sinks the shell gave it.

Every queue has a byte limit: a queue that reaches `WRITE_THROUGH_BYTES` within one turn is
written at once instead of waiting for the flush, so the outbox holds at most that much for any
connection. What the connection cannot take then waits in the shell's transport, whose limit
(`Limits.max_output_buffer`) is what makes a receiver a slow consumer.

A mailbox whose member has a session (core/resume.py) has its packets numbered and kept as
they are queued (`Mailbox.kept`), and a held member's mailbox only keeps them: it has no
connection to write to.

Pure code: no sockets, no event loop.
"""

from __future__ import annotations

import enum
from typing import Protocol

from ..osc.framing import Framing, frame_length_prefix, frame_slip

__all__ = ["WRITE_THROUGH_BYTES", "Ending", "Kept", "Mailbox", "Outbox", "Sink"]

# The queue of every mailbox with nothing queued: a mailbox gets a list of its own only while it
# has output waiting, so an idle connection costs no list (never appended to: see `deliver`).
_NOTHING: list[bytes] = []

# 64 KiB: at the benchmark's capacity a busy receiver gets about 10 KB per turn, so everything
# still coalesces; a turn that reads megabytes (an overloaded router catching up: libuv reads a
# socket up to 32 times per turn) cannot pile them up per receiver.
WRITE_THROUGH_BYTES = 64 * 1024


class Sink(Protocol):
    """Where a connection's bytes go; the shell implements it over its transport."""

    def write(self, data: bytes) -> None:
        """Send `data`: a piece of the byte stream, or for WebSocket one whole message.

        Must not call back into the hub: a full buffer is reported later, on its own turn. May
        raise RuntimeError when the connection is closed already (uvloop's transports do until
        the shell has reported the loss): the outbox then writes nothing more to it.
        """

    def close(self) -> None:
        """Close the connection once what was written has been sent."""

    def reset(self) -> None:
        """Reset the connection at once, dropping whatever is still buffered."""


class Kept(Protocol):
    """Where a session's packets are numbered and kept (core/resume.py's `Resumable`)."""

    def add(self, packet: bytes) -> bool:
        """Number and keep `packet`; True while its member is held (nothing to write to)."""

    def add_run(self, packets: list[bytes]) -> bool:
        """`add` each of `packets`, in order."""


class Ending(enum.Enum):
    CLOSE = "close"  # write what is queued, then close
    RESET = "reset"  # drop what is queued, reset at once (a receiver that cannot keep up)


class Mailbox:
    """The output side of one connection."""

    __slots__ = (
        "_framing",
        "done",
        "ending",
        "kept",
        "list_version",
        "owner",
        "queue",
        "queued",
        "sink",
        "stream",
        "tempo_relative",
    )

    def __init__(self, sink: Sink, framing: Framing | None, owner: int) -> None:
        self.sink = sink
        # The version of its group's user list it was last given (core/directory.py).
        self.list_version = -1
        self.owner = owner  # the hub's id of the session this mailbox belongs to
        self.queue = _NOTHING
        self.queued = 0  # bytes in `queue`
        self.ending: Ending | None = None
        self.done = False  # the ending has been carried out, or the connection is gone
        self.kept: Kept | None = None  # its session's numbering, while it has one
        self.tempo_relative = False  # told the tempo as floats (core/tempo.py)
        self.framing = framing

    @property
    def framing(self) -> Framing | None:
        """None until the client's first bytes show it."""
        return self._framing

    @framing.setter
    def framing(self, framing: Framing | None) -> None:
        self._framing = framing
        # Whether the queue may be joined into one write (kept apart for the flush's sake).
        self.stream = framing is None or framing.is_stream


class Outbox:
    def __init__(self, write_through: int = WRITE_THROUGH_BYTES) -> None:
        self._write_through = write_through
        self._pending: list[Mailbox] = []
        self.deliveries = 0  # packets put into mailboxes
        self.writes = 0  # calls of Sink.write
        self.bytes_written = 0

    def mailbox(self, sink: Sink, framing: Framing | None, owner: int) -> Mailbox:
        return Mailbox(sink, framing, owner)

    @property
    def has_pending(self) -> bool:
        return bool(self._pending)

    def deliver(self, boxes: list[Mailbox], packet: bytes) -> None:
        """Queue one packet for many mailboxes, framed once per framing in use (the hot path)."""
        length_prefixed: bytes | None = None
        slipped: bytes | None = None
        lp, slip = Framing.LENGTH_PREFIX, Framing.SLIP
        pending = self._pending
        write_through = self._write_through
        for box in boxes:
            kept = box.kept
            if kept is not None and kept.add(packet):
                continue  # held: kept for its resume, nowhere to write
            framing = box._framing
            if framing is lp:
                if length_prefixed is None:
                    length_prefixed = frame_length_prefix(packet)
                data = length_prefixed
            elif framing is slip:
                if slipped is None:
                    slipped = frame_slip(packet)
                data = slipped
            else:
                data = packet  # WebSocket: the message is the frame
            if box.queue:
                box.queue.append(data)
            else:
                box.queue = [data]
                pending.append(box)
            queued = box.queued = box.queued + len(data)
            if queued >= write_through:
                self._write_through_now(box)
        self.deliveries += len(boxes)

    def deliver_run(self, boxes: list[Mailbox], packets: list[bytes]) -> None:
        """Queue consecutive packets of one sender for the same mailboxes: each framing's bytes
        are joined once, so a read of many packets costs one append per receiver.

        The loop repeats `deliver`'s on purpose: it is the hot path, and a shared helper would
        cost a call per receiver."""
        if len(packets) == 1:
            self.deliver(boxes, packets[0])
            return
        length_prefixed: bytes | None = None
        slipped: bytes | None = None
        lp, slip = Framing.LENGTH_PREFIX, Framing.SLIP
        pending = self._pending
        write_through = self._write_through
        for box in boxes:
            kept = box.kept
            if kept is not None and kept.add_run(packets):
                continue
            framing = box._framing
            queue = box.queue
            if not queue:
                queue = box.queue = []
                pending.append(box)
            if framing is lp:
                if length_prefixed is None:
                    length_prefixed = b"".join([frame_length_prefix(p) for p in packets])
                queue.append(length_prefixed)
                queued = box.queued = box.queued + len(length_prefixed)
            elif framing is slip:
                if slipped is None:
                    slipped = b"".join([frame_slip(p) for p in packets])
                queue.append(slipped)
                queued = box.queued = box.queued + len(slipped)
            else:  # WebSocket: a message per packet
                queue.extend(packets)
                queued = box.queued = box.queued + sum(map(len, packets))
            if queued >= write_through:
                self._write_through_now(box)
        self.deliveries += len(boxes) * len(packets)

    def send(self, box: Mailbox, packet: bytes) -> None:
        """Queue one packet for one mailbox (replies, private messages)."""
        if box.ending is not None or box.framing is None:
            return  # closing, or it never showed a framing to answer in
        self.deliver([box], packet)

    def send_unnumbered(self, box: Mailbox, packets: list[bytes]) -> None:
        """Queue packets for one mailbox outside its session's numbering: the session's own
        replies, and what a resume sends again (numbered already)."""
        kept, box.kept = box.kept, None
        if box.ending is None and box.framing is not None and packets:
            self.deliver_run([box], packets)
        box.kept = kept

    def end(self, box: Mailbox, ending: Ending) -> None:
        """Close (after what is queued) or reset the connection at the next flush."""
        if box.done or box.ending is Ending.RESET:
            return
        box.ending = ending
        self._pending.append(box)

    def reset(self, box: Mailbox) -> None:
        """Reset the connection at the next flush, dropping what is queued, even if a close was
        carried out already (its peer never took the last bytes)."""
        _drop_queue(box)
        box.done = False
        box.ending = Ending.RESET
        self._pending.append(box)

    def gone(self, box: Mailbox) -> None:
        """The connection is gone: forget what was queued for it."""
        box.done = True
        _drop_queue(box)

    def flush(self) -> None:
        """Write every queue to its sink and carry out the endings decided since last time."""
        pending, self._pending = self._pending, []
        writes = written = 0
        for box in pending:
            queue = box.queue
            try:
                if queue and box.ending is None and box.stream:  # the busy path: one write
                    box.queue = _NOTHING
                    written += box.queued
                    box.queued = 0
                    box.sink.write(queue[0] if len(queue) == 1 else b"".join(queue))
                    writes += 1
                elif not box.done:
                    self._finish(box)
            except RuntimeError:  # closed under us; the shell reports the loss on its own turn
                self.gone(box)
        self.writes += writes
        self.bytes_written += written

    def _finish(self, box: Mailbox) -> None:
        ending = box.ending
        if ending is Ending.RESET:
            self.gone(box)  # what is queued is dropped, not written
            box.sink.reset()
            return
        if box.queue:
            self._write(box)
        if ending is Ending.CLOSE:
            box.done = True
            box.sink.close()

    def _write_through_now(self, box: Mailbox) -> None:
        try:
            self._write(box)
        except RuntimeError:  # closed under us, as in flush()
            self.gone(box)

    def _write(self, box: Mailbox) -> None:
        queue = box.queue
        box.queue = _NOTHING
        self.bytes_written += box.queued
        box.queued = 0
        if box.stream:
            self.writes += 1
            box.sink.write(queue[0] if len(queue) == 1 else b"".join(queue))
        else:
            self.writes += len(queue)
            for message in queue:
                box.sink.write(message)


def _drop_queue(box: Mailbox) -> None:
    box.queue = _NOTHING
    box.queued = 0

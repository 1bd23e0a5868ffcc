"""The outbox: framing once per framing, per-connection queues, one write per flush, byte limits."""

from __future__ import annotations

from support.net import LP, SLIP, WS, RecordingSink
from support.osc import msg
from tcposcrouter.core.outbox import WRITE_THROUGH_BYTES, Ending, Mailbox, Outbox
from tcposcrouter.osc.framing import Framing, frame


def boxes(outbox: Outbox, *framings: Framing | None) -> list[tuple[Mailbox, RecordingSink]]:
    made = []
    for number, framing in enumerate(framings):
        sink = RecordingSink()
        made.append((outbox.mailbox(sink, framing, number), sink))
    return made


def test_nothing_is_written_before_the_flush_then_everything_in_one_write() -> None:
    outbox = Outbox()
    [(box, sink)] = boxes(outbox, LP)
    packets = [msg("/a", i) for i in range(5)]
    for packet in packets:  # five senders' packets within one loop turn
        outbox.deliver([box], packet)
    assert sink.writes == [] and outbox.has_pending
    outbox.flush()
    assert sink.writes == [b"".join(frame(p, LP) for p in packets)]
    assert not outbox.has_pending
    outbox.flush()  # nothing new: no empty write
    assert len(sink.writes) == 1


def test_a_lone_packet_is_written_as_it_is() -> None:
    outbox = Outbox()
    [(box, sink)] = boxes(outbox, LP)
    outbox.deliver([box], msg("/lone", 1))
    outbox.flush()
    assert sink.writes == [frame(msg("/lone", 1), LP)]


def test_framed_once_per_framing_and_the_same_bytes_for_every_receiver() -> None:
    outbox = Outbox()
    made = boxes(outbox, LP, LP, SLIP, SLIP, WS)
    packet = msg("/x", 1)
    outbox.deliver([box for box, _ in made], packet)
    outbox.flush()
    written = [sink.writes[0] for _, sink in made]
    assert written[0] is written[1] and written[0] == frame(packet, LP)
    assert written[2] is written[3] and written[2] == frame(packet, SLIP)
    assert written[4] is packet  # WebSocket: the message is the frame


def test_websocket_gets_one_write_per_packet() -> None:
    outbox = Outbox()
    [(box, sink)] = boxes(outbox, WS)
    run = [msg("/a", 1), msg("/b", 2)]
    outbox.deliver_run([box], run)
    outbox.deliver([box], msg("/c", 3))
    outbox.flush()
    assert sink.writes == [*run, msg("/c", 3)]


def test_a_run_is_joined_once_per_framing() -> None:
    outbox = Outbox()
    made = boxes(outbox, LP, LP, SLIP)
    run = [msg("/a", 1), msg("/b", 2), msg("/c", 3)]
    outbox.deliver_run([box for box, _ in made], run)
    outbox.flush()
    (lp1,), (lp2,), (slip,) = (sink.writes for _, sink in made)
    assert lp1 is lp2 and lp1 == b"".join(frame(p, LP) for p in run)
    assert slip == b"".join(frame(p, SLIP) for p in run)
    assert outbox.deliveries == 9 and outbox.writes == 3


def test_order_is_kept_across_runs_single_packets_and_replies() -> None:
    outbox = Outbox()
    [(box, sink)] = boxes(outbox, LP)
    outbox.deliver([box], msg("/1"))
    outbox.deliver_run([box], [msg("/2"), msg("/3")])
    outbox.send(box, msg("/4"))
    outbox.flush()
    assert sink.writes == [b"".join(frame(msg(f"/{i}"), LP) for i in range(1, 5))]


def test_a_queue_at_the_byte_limit_is_written_at_once() -> None:
    outbox = Outbox()
    [(box, sink)] = boxes(outbox, LP)
    big = msg("/big", "x" * 1000)
    count = WRITE_THROUGH_BYTES // len(frame(big, LP)) + 1
    for _ in range(count):
        outbox.deliver([box], big)
    # The outbox never held more than the limit: it wrote through once the queue reached it.
    assert len(sink.writes) == 1 and len(sink.writes[0]) >= WRITE_THROUGH_BYTES
    assert box.queued < WRITE_THROUGH_BYTES
    outbox.flush()
    assert b"".join(sink.writes) == frame(big, LP) * count
    assert outbox.bytes_written == len(frame(big, LP)) * count


def test_close_writes_what_is_queued_first_and_reset_drops_it() -> None:
    outbox = Outbox()
    (closing, closed_sink), (resetting, reset_sink) = boxes(outbox, LP, LP)
    for box in (closing, resetting):
        outbox.deliver([box], msg("/last", 1))
    outbox.end(closing, Ending.CLOSE)
    outbox.end(resetting, Ending.RESET)
    outbox.send(closing, msg("/too/late", 1))  # nothing is queued after the decision
    outbox.flush()
    assert closed_sink.writes == [frame(msg("/last", 1), LP)] and closed_sink.closed
    assert reset_sink.writes == [] and reset_sink.was_reset and not reset_sink.closed
    outbox.end(closing, Ending.RESET)  # an ending is carried out once
    outbox.flush()
    assert not closed_sink.was_reset


def test_no_reply_to_a_connection_that_never_showed_its_framing() -> None:
    outbox = Outbox()
    [(box, sink)] = boxes(outbox, None)
    outbox.send(box, msg("/oscrouter/error", "x"))
    outbox.end(box, Ending.CLOSE)
    outbox.flush()
    assert sink.writes == [] and sink.closed


def test_a_discarded_mailbox_gets_nothing_more() -> None:
    outbox = Outbox()
    [(box, sink)] = boxes(outbox, LP)
    outbox.deliver([box], msg("/x"))
    outbox.gone(box)
    outbox.end(box, Ending.CLOSE)
    outbox.flush()
    assert sink.writes == [] and not sink.closed


class ClosedSink(RecordingSink):
    """A transport closed under the outbox: uvloop's raise RuntimeError until the loss is told."""

    def write(self, data: bytes) -> None:
        raise RuntimeError("unable to perform operation: the handler is closed")


def test_a_sink_closed_under_the_outbox_costs_nobody_else_their_output() -> None:
    outbox = Outbox()
    closed = outbox.mailbox(ClosedSink(), LP, 1)
    [(alive, sink)] = boxes(outbox, LP)
    outbox.deliver([closed, alive], msg("/x", 1))
    outbox.flush()
    assert sink.writes == [frame(msg("/x", 1), LP)]
    assert closed.done  # nothing more is tried on it
    outbox.deliver([closed, alive], msg("/y", 2))
    outbox.flush()
    assert len(sink.writes) == 2

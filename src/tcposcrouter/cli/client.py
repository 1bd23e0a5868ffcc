"""`tcposcrouter-client`: join a group from the command line.

    tcposcrouter-client send /note 60 0.5 piano        one message, then leave
    tcposcrouter-client listen [--json]                print everything that arrives
    tcposcrouter-client bridge --udp-listen 127.0.0.1:57121 --udp-forward 127.0.0.1:57120
    tcposcrouter-client record set.jsonl / replay set.jsonl   a group's packets, with timing
    tcposcrouter-client time                           this machine's clock against the router's
    tcposcrouter-client tempo [--follow | --set BPM [--next-bar]]   the group's tempo
    tcposcrouter-client state [--set /fader 0.5 | --clear /fader]   the group's state
    tcposcrouter-client link                           this network's Ableton Link, bridged

Exit codes: 0 done; 1 the connection was lost for good; 2 bad arguments or message syntax;
3 cannot connect (one line says why and what to do); 4 the router refused the register (its
error code is printed); 70 an unexpected error, which is a bug (one line, no traceback).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import signal
import sys
import time
from collections.abc import Sequence
from typing import TextIO

from ..bridge import Bridge, BridgeConfig
from ..bridge.ableton_link import LinkBridge, LinkUnavailable
from ..bridge.retime import shift_time_tags
from ..client.aio import CannotConnect, RouterClient
from ..client.protocol import RegisterRefused, TempoLine, as_private
from ..client.recording import BadRecording, Record, header, read_records, record_line
from ..client.text import BadMessageText, format_packet, packet_records, parse_message
from ..osc.messages import user_list_message
from ..osc.state import wrap_state
from .client_flags import build_parser

__all__ = ["EXIT_BUG", "EXIT_CANNOT_CONNECT", "EXIT_LOST", "EXIT_REFUSED", "EXIT_USAGE", "main"]

EXIT_LOST, EXIT_USAGE, EXIT_CANNOT_CONNECT, EXIT_REFUSED = 1, 2, 3, 4
EXIT_BUG = 70  # sysexits.h's EX_SOFTWARE


async def _join(args: argparse.Namespace, **options: object) -> RouterClient:
    return await RouterClient.connect(
        args.server, args.user, args.password, args.group, args.group_password, **options
    )


async def _send(args: argparse.Namespace) -> int:
    try:
        if args.bundle:
            packets = [parse_message(text) for text in args.message]
        else:
            packets = [parse_message(args.message)]
    except BadMessageText as exc:
        print(f"tcposcrouter-client: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.to:
        packets = [as_private(args.to, packet) for packet in packets]
    client = await _join(args, reconnect=False)
    try:
        if args.bundle or args.at is not None:
            at = None if args.at is None else time.time() + args.at
            await client.send_bundle(packets, at)
        else:
            await client.send_raw(packets[0])
    finally:
        await client.close()
    return 0


async def _listen(args: argparse.Namespace) -> int:
    def lost_and_back() -> None:
        how = "its place resumed, nothing missed" if client.resumed else "registered anew"
        print(f"tcposcrouter-client: reconnected, {how}", file=sys.stderr, flush=True)

    def show(packet: bytes) -> None:
        if args.json:
            for record in packet_records(packet):
                print(json.dumps(record, ensure_ascii=False), flush=True)
        else:
            for line in format_packet(packet):
                print(line, flush=True)

    # The user list is shown as the message it is, like everything else that arrives.
    client = await _join(
        args, on_reconnect=lost_and_back, on_users=lambda names: show(user_list_message(names))
    )
    try:  # a connection lost for good is told by main(), as for every command
        async for packet in client:
            show(packet.raw)
    finally:
        await client.close()
    return 0


async def _bridge(args: argparse.Namespace) -> int:
    if args.udp_listen is None and not args.udp_forward and args.ws_listen is None:
        print(
            "tcposcrouter-client bridge: give --udp-listen, --udp-forward or --ws-listen",
            file=sys.stderr,
        )
        return EXIT_USAGE
    config = BridgeConfig(
        args.server, args.user, args.password, args.group, args.group_password,
        udp_listen=args.udp_listen, udp_forward=args.udp_forward, ws_listen=args.ws_listen,
        retime=args.retime,
    )  # fmt: skip
    loop = asyncio.get_running_loop()
    running = asyncio.ensure_future(Bridge(config).run())
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, running.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await running
    return 0


async def _link(args: argparse.Namespace) -> int:
    config = BridgeConfig(args.server, args.user, args.password, args.group, args.group_password)
    loop = asyncio.get_running_loop()
    running = asyncio.ensure_future(LinkBridge(config).run())
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, running.cancel)
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await running
    except LinkUnavailable as exc:
        print(f"tcposcrouter-client link: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return 0


async def _record(args: argparse.Namespace, out: TextIO) -> int:
    started = time.time()
    out.write(header(args.group, args.server, started) + "\n")

    def users(names: list[str]) -> None:
        now = time.time()
        out.write(record_line(Record(now - started, now, users=names)) + "\n")
        out.flush()

    client = await _join(args, on_users=users)
    count = 0

    async def take() -> None:
        nonlocal count
        async for packet in client:
            entry = Record(
                packet.received - started,
                packet.received,
                packet.raw,
                private=packet.private_from is not None,
            )
            out.write(record_line(entry) + "\n")
            out.flush()  # a recording cut short keeps everything up to its end
            count += 1

    try:
        await asyncio.wait_for(take(), args.seconds)
    except asyncio.TimeoutError:
        pass
    finally:
        await client.close()
    print(f"recorded {count} packets to {args.file}", file=sys.stderr)
    return 0


def _load(path: str) -> list[Record] | None:
    """The replayable records of a recording, or None (the reason printed)."""
    try:
        with open(path, encoding="utf-8") as recording:
            records = [r for r in read_records(recording) if r.replayable]
    except (OSError, BadRecording) as exc:
        print(f"tcposcrouter-client replay: {path}: {exc}", file=sys.stderr)
        return None
    if not records:
        print(f"tcposcrouter-client replay: {path}: no packets to play", file=sys.stderr)
        return None
    return records


# The last stretch before a replayed packet is due is waited out by yielding to the event loop
# rather than by a timer: uvloop's timers count whole milliseconds, which put gaps off by up to
# 5 ms; yielding keeps them within a fraction of one (tests/integration/test_record_replay.py).
SPIN_SECONDS = 0.003


async def _until(moment: float) -> None:
    """Return at `moment` (time.monotonic), as closely as the event loop allows."""
    ahead = moment - time.monotonic()
    if ahead > SPIN_SECONDS:
        await asyncio.sleep(ahead - SPIN_SECONDS)
    while time.monotonic() < moment:  # noqa: ASYNC110 - a deadline, not an event to wait for
        await asyncio.sleep(0)


async def _replay(args: argparse.Namespace, records: list[Record]) -> int:
    client = await _join(args, reconnect=False)
    first = records[0].t
    gaps = [b.t - a.t for a, b in itertools.pairwise(records)]
    # A loop starts again one average gap after its last packet.
    period = records[-1].t - first + (sum(gaps) / len(gaps) if gaps else 1.0)
    try:
        start = time.monotonic()
        while True:
            for entry in records:
                await _until(start + (entry.t - first) / args.speed)
                packet = entry.packet
                assert packet is not None
                if args.shift_time_tags:
                    packet = shift_time_tags(packet, time.time() - entry.wall)
                await client.send_raw(packet)
            if not args.loop:
                break
            start += period / args.speed
    finally:
        await client.close()
    return 0


# How long `tempo` and `state` wait for what the router tells on joining: a router older than
# these extensions never tells it.
TOLD_SECONDS = 5.0


async def _told(client: RouterClient, told: asyncio.Event, what: str) -> bool:
    """Whether the router told the group's `what` on joining; if not, say so."""
    try:
        await asyncio.wait_for(told.wait(), TOLD_SECONDS)
    except asyncio.TimeoutError:
        print(f"tcposcrouter-client: {client.server} keeps no group {what} (an older router)",
              file=sys.stderr)  # fmt: skip
        return False
    return True


def _tempo_text(line: TempoLine, beat: float, as_json: bool) -> str:
    bar, in_bar = divmod(beat, line.quantum)
    if as_json:
        return json.dumps(
            {
                "bpm": line.bpm, "quantum": line.quantum, "playing": bool(line.playing),
                "beat": round(beat, 3), "bar": int(bar) + 1, "beat_in_bar": int(in_bar) + 1,
                "t0": line.t0, "beat0": line.beat0,
            }
        )  # fmt: skip
    transport = "playing" if line.playing else "stopped"
    return (
        f"{line.bpm:g} bpm, {line.quantum} beats a bar, {transport}: beat {beat:.2f} "
        f"(bar {int(bar) + 1}, beat {int(in_bar) + 1})"
    )


async def _tempo(args: argparse.Namespace) -> int:
    changes = args.set is not None or args.play or args.stop
    if (args.at_beat is not None or args.next_bar) and not changes:
        print("tcposcrouter-client tempo: --at-beat and --next-bar go with --set, --play or "
              "--stop", file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    lines: asyncio.Queue[TempoLine] = asyncio.Queue()
    refusals: list[str] = []
    client = await _join(
        args,
        reconnect=args.follow,
        on_tempo=lines.put_nowait,
        on_error=lambda code, detail: refusals.append(f"{code}: {detail}"),
    )
    try:
        if not await _told(client, client.tempo_told, "tempo"):
            return EXIT_LOST
        await client.sync_time()
        while not lines.empty():  # what was told on joining is shown below
            lines.get_nowait()
        at = args.at_beat
        if args.next_bar:
            at = client.next_bar()
        if args.set is not None:
            await client.set_tempo(args.set, at, args.quantum)
        if args.play or args.stop:
            await client.set_playing(args.play, at)
        if changes:  # told back to everyone, the setter too: an error comes instead
            await client.sync_time(1)  # answered after the change: the router has taken it
            if refusals:
                print(f"tcposcrouter-client: the router refused: {refusals[0]}", file=sys.stderr)
                return EXIT_USAGE
            told = await asyncio.wait_for(lines.get(), TOLD_SECONDS)
            print(_tempo_text(told, told.beat0, args.json), flush=True)
            return 0
        print(_tempo_text(client.group_clock.line_at(time.time()), client.beat(), args.json),
              flush=True)  # fmt: skip
        while args.follow:
            told = await lines.get()
            print(_tempo_text(told, told.beat0, args.json), flush=True)
    finally:
        await client.close()
    return 0


async def _state(args: argparse.Namespace) -> int:
    if args.set is not None:
        try:
            message = parse_message(args.set)
        except BadMessageText as exc:
            print(f"tcposcrouter-client: {exc}", file=sys.stderr)
            return EXIT_USAGE
    client = await _join(args, reconnect=False)
    try:
        if not await _told(client, client.state_told, "state"):
            return EXIT_LOST
        if args.set is not None:
            await client.send_raw(wrap_state(message))
            await client.sync_time(1)  # answered after the set: the router has taken it
        elif args.clear is not None:
            await client.clear_state(args.clear)
            await client.sync_time(1)
        else:
            for packet in client.state.values():
                if args.json:
                    for record in packet_records(packet.raw):
                        print(json.dumps(record, ensure_ascii=False), flush=True)
                else:
                    for line in format_packet(packet.raw):
                        print(line, flush=True)
    finally:
        await client.close()
    return 0


async def _time(args: argparse.Namespace) -> int:
    client = await _join(args, reconnect=False)
    try:
        estimate = await client.sync_time(args.exchanges)
    finally:
        await client.close()
    if args.json:
        figures = {
            "offset_seconds": estimate.offset,
            "round_trip_seconds": estimate.round_trip,
            "exchanges": estimate.samples,
        }
        print(json.dumps(figures))
    else:
        ahead = "ahead of" if estimate.offset >= 0 else "behind"
        print(f"offset {estimate.offset:+.6f} s (the router's clock is {ahead} this machine's)")
        print(f"round trip {estimate.round_trip:.6f} s (quickest of {estimate.samples} exchanges)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.verbose:
        logging.basicConfig(
            level=logging.INFO, stream=sys.stderr, format="tcposcrouter-client: %(message)s"
        )
    if args.command == "replay" and args.speed <= 0:
        print("tcposcrouter-client replay: --speed must be above 0", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.command == "record":
            try:
                out = open(args.file, "w", encoding="utf-8")  # noqa: SIM115 - closed below
            except OSError as exc:
                print(f"tcposcrouter-client record: {args.file}: {exc.strerror}", file=sys.stderr)
                return EXIT_USAGE
            with out:
                return asyncio.run(_record(args, out))
        if args.command == "replay":
            records = _load(args.file)
            return EXIT_USAGE if records is None else asyncio.run(_replay(args, records))
        run = {
            "send": _send, "listen": _listen, "bridge": _bridge, "time": _time,
            "tempo": _tempo, "state": _state, "link": _link,
        }[args.command]  # fmt: skip
        return asyncio.run(run(args))
    except RegisterRefused as refused:
        print(f"tcposcrouter-client: refused by the router: {refused}", file=sys.stderr)
        return EXIT_REFUSED
    except CannotConnect as exc:
        print(f"tcposcrouter-client: {exc}", file=sys.stderr)
        return EXIT_CANNOT_CONNECT
    except asyncio.TimeoutError:  # after the register: an answer (the time service's) never came
        print(f"tcposcrouter-client: {args.server} did not answer in time", file=sys.stderr)
        return EXIT_LOST
    except ConnectionError as lost:  # after the register: the router went away mid-command
        print(f"tcposcrouter-client: connection lost: {lost}", file=sys.stderr)
        return EXIT_LOST
    except OSError as exc:  # this machine's side: a local port or file (connecting is above)
        print(f"tcposcrouter-client: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 0
    except Exception as exc:
        print(
            f"tcposcrouter-client: unexpected error ({type(exc).__name__}: {exc}); this is a bug "
            "in tcposcrouter-client, please report it with the command you ran",
            file=sys.stderr,
        )
        return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())

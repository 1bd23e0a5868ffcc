"""`tcposcrouter-client`: join a group from the command line.

    tcposcrouter-client send /note 60 0.5 piano        one message, then leave
    tcposcrouter-client listen [--json]                print everything that arrives
    tcposcrouter-client bridge --udp-listen 127.0.0.1:57121 --udp-forward 127.0.0.1:57120
    tcposcrouter-client record set.jsonl / replay set.jsonl   a group's packets, with timing
    tcposcrouter-client time                           this machine's clock against the router's

Exit codes: 0 done; 1 the connection was lost for good; 2 bad arguments or message syntax;
3 cannot connect; 4 the router refused the register (its error code is printed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import itertools
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import TextIO

from .. import __version__
from ..bridge import Bridge, BridgeConfig
from ..bridge.retime import shift_time_tags
from ..client.aio import DEFAULT_SERVER, RouterClient, parse_server
from ..client.protocol import RegisterRefused, as_private
from ..client.recording import BadRecording, Record, header, read_records, record_line
from ..client.text import BadMessageText, format_packet, packet_records, parse_message
from ..osc.messages import user_list_message

__all__ = ["EXIT_CANNOT_CONNECT", "EXIT_LOST", "EXIT_REFUSED", "EXIT_USAGE", "main"]

EXIT_LOST, EXIT_USAGE, EXIT_CANNOT_CONNECT, EXIT_REFUSED = 1, 2, 3, 4
# The SuperCollider client's defaults (docs/protocol.md §6): its group and group password are
# "oscrouter", and it sends the text "nil" for a password not given.
DEFAULT_GROUP = "oscrouter"
DEFAULT_PASSWORD = "nil"


def _server(text: str) -> str:
    try:
        parse_server(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"not HOST:PORT: {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tcposcrouter-client",
        description="Join a tcposcrouter group from the command line.",
        epilog="Exit codes: 0 done, 1 connection lost, 2 bad arguments, 3 cannot connect, "
        "4 refused by the router.",
    )
    parser.add_argument("--version", action="version", version=f"tcposcrouter {__version__}")
    joining = argparse.ArgumentParser(add_help=False)
    joining.add_argument(
        "--server",
        type=_server,
        default=DEFAULT_SERVER,
        help="HOST:PORT (length prefix), slip://HOST:PORT, tls://HOST:PORT, "
        "tls+slip://HOST:PORT, or ws://…/osc, wss://…/osc (default %(default)s)",
    )
    joining.add_argument(
        "--user", default=os.environ.get("TCPOSCROUTER_USER") or getpass.getuser(),
        help="user name (default: $TCPOSCROUTER_USER, else your login name)",
    )  # fmt: skip
    joining.add_argument(
        "--password",
        default=os.environ.get("TCPOSCROUTER_PASSWORD", DEFAULT_PASSWORD),
        help="user password (default: $TCPOSCROUTER_PASSWORD, else nil, as SuperCollider's)",
    )
    joining.add_argument("--group", default=DEFAULT_GROUP, help="group (default %(default)s)")
    joining.add_argument(
        "--group-password",
        default=os.environ.get("TCPOSCROUTER_GROUP_PASSWORD", DEFAULT_GROUP),
        help="group password (default: $TCPOSCROUTER_GROUP_PASSWORD, else oscrouter)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    send = commands.add_parser(
        "send",
        parents=[joining],
        help="send one message or bundle, then leave",
        description="Send one message (ADDRESS ARG…) or, with --bundle, a bundle of messages "
        'each given as one quoted argument ("/a 1 2" "/b x"). Arguments: 42 int, 0.5 float, '
        "word or s:60 string, T F N, i: f: d: h: s: b:HEX m:HEX r:HEX typed.",
    )
    send.add_argument("message", nargs="+", metavar="ADDRESS_OR_MESSAGE")
    send.add_argument("--bundle", action="store_true", help="each argument is one message")
    send.add_argument(
        "--at", type=float, metavar="SECONDS", help="bundle time: this many seconds from now"
    )
    send.add_argument("--to", metavar="USER", help="send privately to USER")

    listen = commands.add_parser(
        "listen",
        parents=[joining],
        help="print everything the group sends, one line per message",
        description="Print every message that arrives, one line each (bundles: one line per "
        "message, prefixed @TIME), until Ctrl-C. Reconnects by itself.",
    )
    listen.add_argument("--json", action="store_true", help="JSON lines instead")

    bridge = commands.add_parser(
        "bridge",
        parents=[joining],
        help="bridge the group to local UDP and WebSocket OSC apps",
        description="Join the group and bridge it to this machine: what local apps send to "
        "--udp-listen (or over --ws-listen) goes to the group; what the group sends goes to "
        "every --udp-forward address and every --ws-listen client. Runs until Ctrl-C, "
        "reconnecting by itself; what is sent while the router is away is reported as lost.",
    )
    bridge.add_argument("--udp-listen", type=_address, metavar="HOST:PORT")
    bridge.add_argument(
        "--udp-forward", type=_address, action="append", default=[], metavar="HOST:PORT",
        help="where the group's packets go (repeat for several apps)",
    )  # fmt: skip
    bridge.add_argument(
        "--ws-listen", type=_address, metavar="HOST:PORT",
        help="accept local WebSocket clients (one binary message per packet, osc-js's way)",
    )  # fmt: skip
    bridge.add_argument(
        "--retime",
        action="store_true",
        help="move bundle time tags to group time going out and to local time coming in",
    )

    record = commands.add_parser(
        "record",
        parents=[joining],
        help="record everything the group sends, with arrival times, to a file",
        description="Write every packet the group sends, with its arrival time, to FILE as "
        "JSON lines (the format is in docs/client-tools.md), until Ctrl-C or --seconds.",
    )
    record.add_argument("file", metavar="FILE")
    record.add_argument("--seconds", type=float, help="stop after this long")

    replay = commands.add_parser(
        "replay",
        parents=[joining],
        help="play a recording back into a group with its original timing",
    )
    replay.add_argument("file", metavar="FILE")
    replay.add_argument("--speed", type=float, default=1.0, help="2: twice as fast (default 1)")
    replay.add_argument("--loop", action="store_true", help="play it again and again")
    replay.add_argument(
        "--shift-time-tags",
        action="store_true",
        help="move bundle time tags by as long as it is since they were recorded, so that "
        "scheduled bundles play as far ahead as they did (default: byte for byte)",
    )

    clock = commands.add_parser(
        "time",
        parents=[joining],
        help="this machine's clock offset and round-trip time to the router",
    )
    clock.add_argument("--exchanges", type=int, default=8, help="time exchanges (default 8)")
    clock.add_argument("--json", action="store_true", help="one JSON object instead")
    return parser


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
        print("tcposcrouter-client: reconnected", file=sys.stderr, flush=True)

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
    try:
        async for packet in client:
            show(packet.raw)
    except RegisterRefused:
        raise
    except ConnectionError:
        return EXIT_LOST
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
        print(f"round trip {estimate.round_trip:.6f} s (best of {estimate.samples} exchanges)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "replay" and args.speed <= 0:
        print("tcposcrouter-client replay: --speed must be above 0", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.command == "record":
            with open(args.file, "w", encoding="utf-8") as out:
                return asyncio.run(_record(args, out))
        if args.command == "replay":
            records = _load(args.file)
            return EXIT_USAGE if records is None else asyncio.run(_replay(args, records))
        run = {"send": _send, "listen": _listen, "bridge": _bridge, "time": _time}[args.command]
        return asyncio.run(run(args))
    except RegisterRefused as refused:
        print(f"tcposcrouter-client: refused by the router: {refused}", file=sys.stderr)
        return EXIT_REFUSED
    except (OSError, asyncio.TimeoutError) as exc:
        print(f"tcposcrouter-client: cannot connect to {args.server}: {exc}", file=sys.stderr)
        return EXIT_CANNOT_CONNECT
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())

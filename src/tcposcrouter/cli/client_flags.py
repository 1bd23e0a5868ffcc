"""`tcposcrouter-client`'s command line: its commands and their flags (cli/client.py runs them).
Each joining flag also reads an environment variable, so a player sets the group once."""

from __future__ import annotations

import argparse
import getpass
import os

from .. import __version__
from ..client.aio import DEFAULT_SERVER, parse_server
from .parser import Parser

__all__ = ["DEFAULT_GROUP", "DEFAULT_PASSWORD", "build_parser"]

# The SuperCollider client's defaults (docs/protocol.md §6): its group and group password are
# "oscrouter", and it sends the text "nil" for a password not given.
DEFAULT_GROUP = "oscrouter"
DEFAULT_PASSWORD = "nil"


def _server(text: str) -> str:
    """One router, or several separated by commas (tried in turn)."""
    try:
        for one in text.split(","):
            parse_server(one.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"not HOST:PORT: {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="tcposcrouter-client",
        description="Join a tcposcrouter group from the command line.",
        epilog="Exit codes: 0 done, 1 connection lost, 2 bad arguments, 3 cannot connect, "
        "4 refused by the router, 70 a bug.",
    )
    parser.add_argument("--version", action="version", version=f"tcposcrouter {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true",
        help="say on stderr what the client does: reconnects, resumes, Link's moves",
    )  # fmt: skip
    joining = Parser(add_help=False)
    joining.add_argument(
        "--server",
        type=_server,
        default=os.environ.get("TCPOSCROUTER_SERVER") or DEFAULT_SERVER,
        help="HOST[:PORT] (length prefix), slip://HOST:PORT, tls://HOST:PORT, "
        "tls+slip://HOST:PORT, or ws://…/osc, wss://…/osc; several, comma-separated, are tried "
        f"in turn (default: $TCPOSCROUTER_SERVER, else {DEFAULT_SERVER})",
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
    joining.add_argument(
        "--group",
        default=os.environ.get("TCPOSCROUTER_GROUP") or DEFAULT_GROUP,
        help=f"group (default: $TCPOSCROUTER_GROUP, else {DEFAULT_GROUP})",
    )
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
        "message, prefixed @TIME), until Ctrl-C. Reconnects by itself, resuming its place "
        "where the router kept it (nothing missed).",
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

    tempo = commands.add_parser(
        "tempo",
        parents=[joining],
        help="show, follow or set the group's tempo",
        description="Show the group's tempo and beat; --follow prints every change until "
        "Ctrl-C; --set changes the tempo and --play/--stop the transport, now, --at-beat B "
        "or at the --next-bar.",
    )
    tempo.add_argument("--follow", action="store_true", help="print every change, until Ctrl-C")
    tempo.add_argument("--set", type=float, metavar="BPM", help="the new tempo, 20 to 999")
    playing = tempo.add_mutually_exclusive_group()
    playing.add_argument("--play", action="store_true", help="start the group's transport")
    playing.add_argument("--stop", action="store_true", help="stop the group's transport")
    when = tempo.add_mutually_exclusive_group()
    when.add_argument("--at-beat", type=float, metavar="BEAT", help="at this beat, not now")
    when.add_argument("--next-bar", action="store_true", help="at the next bar's first beat")
    tempo.add_argument(
        "--quantum", type=int, metavar="BEATS", help="with --set: the new bar length"
    )
    tempo.add_argument("--json", action="store_true", help="one JSON object a line instead")

    state = commands.add_parser(
        "state",
        parents=[joining],
        help="show or set the group's state for late joiners",
        description="Show the group's state (the last message set for each address); --set "
        "ADDRESS ARG… sets one (everyone hears it; latecomers are told it); --clear ADDRESS "
        "forgets one.",
    )
    change = state.add_mutually_exclusive_group()
    change.add_argument("--set", nargs="+", metavar="WORD", help="ADDRESS ARG…, as for send")
    change.add_argument("--clear", metavar="ADDRESS", help="forget this address's value")
    state.add_argument("--json", action="store_true", help="JSON lines instead")

    commands.add_parser(
        "link",
        parents=[joining],
        help="keep this network's Ableton Link session in step with the group's tempo",
        description="Join the group and bridge it to the Ableton Link session of this "
        "network (Live, Bitwig, SuperCollider's LinkClock, Pd's abl_link~, phone apps): Link "
        "takes the group's tempo, beats and bars (the group's bar length as its quantum); a "
        "local peer's tempo change or start/stop changes the group's. Runs until Ctrl-C. "
        "Needs aalink: pip install 'tcposcrouter[link]'.",
    )

    clock = commands.add_parser(
        "time",
        parents=[joining],
        help="this machine's clock offset and round-trip time to the router",
    )
    clock.add_argument("--exchanges", type=int, default=8, help="time exchanges (default 8)")
    clock.add_argument("--json", action="store_true", help="one JSON object instead")
    return parser

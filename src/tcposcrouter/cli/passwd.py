"""`tcposcrouter passwd`: make the password hash a pinned group or user needs in the
configuration file (core/auth.py describes the format).

On a terminal it asks twice, without echo; otherwise it reads one line from standard input
(for scripts: `printf '%s\\n' "$PASSWORD" | tcposcrouter passwd`). The password never appears
on a command line, where `ps` would show it.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Sequence

from ..core.auth import STORED, PasswordHash
from .parser import Parser

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="tcposcrouter passwd",
        description=(
            "Print the hash of a password for the configuration file's pinned groups and users, "
            'as in: password = "$scrypt$..."'
        ),
    )
    parser.add_argument(
        "--for",
        dest="what",
        default="the password",
        metavar="WHAT",
        help='what the prompt asks for, such as "group workshop" (default: the password)',
    )
    return parser


def _read_password(what: str) -> str | None:
    if not sys.stdin.isatty():
        line = sys.stdin.readline()
        return line[:-1] if line.endswith("\n") else line
    first = getpass.getpass(f"{what}: ")
    if getpass.getpass(f"{what} again: ") != first:
        print("tcposcrouter passwd: the two did not match", file=sys.stderr)
        return None
    return first


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        password = _read_password(args.what)
    except (EOFError, KeyboardInterrupt):
        return 1
    if password is None:
        return 1
    if not password:
        print("tcposcrouter passwd: an empty password protects nothing", file=sys.stderr)
        return 1
    print(PasswordHash(password, STORED).encode())
    return 0

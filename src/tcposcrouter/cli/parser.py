"""The command lines' parser: argparse, with every mistake told in one line.

argparse prints its whole usage (twenty lines for the router) in front of the one line that
matters. A mistyped flag here gets that one line, the nearest flag by spelling (as
`--check-config` does for a file's keys), and where the full list is:

    tcposcrouter: --max-conections: no such flag (did you mean --max-connections?); see
    tcposcrouter --help
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from typing import NoReturn

__all__ = ["Parser"]

_UNRECOGNIZED = re.compile(r"^unrecognized arguments: (.*)$")


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line each (subcommands' parsers too)."""

    def _flags(self) -> list[str]:
        """Every long flag --help shows, the subcommands' too (argparse reports their unknown
        flags from the top parser)."""
        shown: list[str] = []
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    if isinstance(sub, Parser):
                        shown += sub._flags()
            elif action.help != argparse.SUPPRESS:
                shown += [flag for flag in action.option_strings if flag.startswith("--")]
        return list(dict.fromkeys(shown))

    def explain(self, message: str) -> str:
        """`message` of argparse's, with the nearest flag for an unknown one."""
        unknown = _UNRECOGNIZED.match(message)
        if unknown is None:
            return message
        lines: list[str] = []
        for word in unknown.group(1).split():
            if not word.startswith("-"):
                continue  # the value of an unknown flag, said with it
            name = word.partition("=")[0]
            near = difflib.get_close_matches(name, self._flags(), n=1, cutoff=0.6)
            hint = f" (did you mean {near[0]}?)" if near else ""
            lines.append(f"{name}: no such flag{hint}")
        return "; ".join(lines) or f"{unknown.group(1)}: not expected here"

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: {self.explain(message)}; see {self.prog} --help\n")
        sys.exit(2)

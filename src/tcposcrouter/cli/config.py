"""The configuration file (`tcposcrouter --config FILE`): TOML, one key per command-line
setting, named as the flag is without its dashes (`--osc-port` is `osc_port`,
`--max-connections-per-address` is `max_connections_per_address`). The command line overrides
the file. `examples/tcposcrouter.toml` lists every key with its default.

A file is checked whole before anything starts: every unknown key and every wrong value is
reported with its line, and nothing is half applied.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["ConfigError", "config_keys", "read_config"]

# Options that are about the file itself, or print and exit: no key.
_NOT_KEYS = {"help", "version", "config", "check_config"}


class ConfigError(ValueError):
    """What is wrong with a configuration file: one line per problem, each with its line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def config_keys(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Every key a file may set, with the command-line option it stands for."""
    keys: dict[str, argparse.Action] = {}
    for action in parser._actions:  # argparse keeps no public list of its options
        if action.dest in _NOT_KEYS or not action.option_strings:
            continue
        long = max(action.option_strings, key=len)
        keys[long.lstrip("-").replace("-", "_")] = action
    return keys


def _line_of(text: str, key: str) -> int:
    for number, line in enumerate(text.splitlines(), 1):
        if re.match(rf"\s*{re.escape(key)}\s*=", line):
            return number
    return 0


def _value(action: argparse.Action, value: Any) -> Any:
    """The value for `action`'s destination, or raise ValueError saying what is wrong."""
    if action.nargs == 0 and isinstance(action, argparse._StoreTrueAction):
        if not isinstance(value, bool):
            raise ValueError("must be true or false")
        return value
    if isinstance(action, argparse._CountAction):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError("must be a whole number, 0 or more")
        return value
    if isinstance(action, argparse._AppendAction):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError('must be a list of strings, such as ["127.0.0.1", "::1"]')
        return [action.type(v) if callable(action.type) else v for v in value]
    if isinstance(value, (bool, list, dict)):
        raise ValueError("must be a single number or string")
    if action.choices is not None and value not in action.choices:
        raise ValueError(f"must be one of {', '.join(map(str, action.choices))}")
    convert = action.type if callable(action.type) else str
    try:
        return convert(str(value))  # the flag's own check: ports, sizes, seconds
    except (argparse.ArgumentTypeError, ValueError) as exc:
        raise ValueError(str(exc) or f"{value!r} is not valid here") from None


def read_config(parser: argparse.ArgumentParser, path: Path) -> dict[str, Any]:
    """The defaults `path` gives the parser's destinations; raise ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read it: {exc.strerror}"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not TOML: {exc}"]) from None
    keys = config_keys(parser)
    problems: list[str] = []
    defaults: dict[str, Any] = {}
    for key, value in data.items():
        where = f"{path}:{_line_of(text, key)}"
        action = keys.get(key)
        if action is None:
            near = difflib.get_close_matches(key, keys, n=2, cutoff=0.8)
            hint = f" (did you mean {', '.join(near)}?)" if near else ""
            problems.append(f"{where}: {key}: no such setting{hint}")
            continue
        try:
            defaults[action.dest] = _value(action, value)
        except ValueError as exc:
            problems.append(f"{where}: {key}: {exc}")
    if problems:
        raise ConfigError(problems)
    return defaults

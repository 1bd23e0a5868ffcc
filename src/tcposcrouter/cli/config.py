"""The configuration file (`tcposcrouter --config FILE`): TOML, one key per command-line
setting, named as the flag is without its dashes (`--osc-port` is `osc_port`,
`--max-connections-per-address` is `max_connections_per_address`). The command line overrides
the file. `examples/tcposcrouter.toml` lists every key with its default.

Two settings exist only in the file: the pinned groups (`[groups.NAME]` tables) and
`allow_new_groups`; they reach the router as one `GroupRules` in the `group_rules` destination.

A file is checked whole before anything starts: every unknown key and every wrong value is
reported with its line, and nothing is half applied. A reload (SIGHUP) reads it the same way,
so a bad file is refused there too, and the running settings stay.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from pathlib import Path
from typing import Any

from ..core.auth import PasswordHash
from ..core.pinned import GroupRules, PinnedGroup
from ..osc.messages import name_problem

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["FILE_ONLY_KEYS", "GROUP_KEYS", "ConfigError", "config_keys", "read_config"]

# Options that are about the file itself, or print and exit: no key.
_NOT_KEYS = {"help", "version", "config", "check_config"}
# Keys with no flag: group definitions do not fit on a command line.
FILE_ONLY_KEYS = ("allow_new_groups", "groups")
# The keys of one `[groups.NAME]` table.
GROUP_KEYS = ("password", "description", "max_users", "users", "other_users")


class ConfigError(ValueError):
    """What is wrong with a configuration file: one line per problem, each with its line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def config_keys(
    parser: argparse.ArgumentParser, *, hidden: bool = False
) -> dict[str, argparse.Action]:
    """Every key a file may set, with the command-line option it stands for. `hidden`: also
    the keys of the old spellings `--help` does not show (cli/flags.py's HIDDEN_ALIASES)."""
    keys: dict[str, argparse.Action] = {}
    for action in parser._actions:  # argparse keeps no public list of its options
        if action.dest in _NOT_KEYS or not action.option_strings:
            continue
        if action.help == argparse.SUPPRESS and not hidden:
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
    keys = config_keys(parser, hidden=True)
    shown = config_keys(parser)
    problems: list[str] = []
    defaults: dict[str, Any] = {}
    if "groups" in data or "allow_new_groups" in data:
        defaults["group_rules"] = _group_rules(data, text, str(path), problems)
    for key, value in data.items():
        if key in FILE_ONLY_KEYS:
            continue
        where = f"{path}:{_line_of(text, key)}"
        action = keys.get(key)
        if action is None:
            near = difflib.get_close_matches(key, [*shown, *FILE_ONLY_KEYS], n=2, cutoff=0.8)
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


def _group_rules(data: dict[str, Any], text: str, path: str, problems: list[str]) -> GroupRules:
    """`allow_new_groups` and the `[groups.NAME]` tables; problems go into `problems`."""
    allow = data.get("allow_new_groups", True)
    if not isinstance(allow, bool):
        problems.append(
            f"{path}:{_line_of(text, 'allow_new_groups')}: allow_new_groups: must be true or false"
        )
        allow = True
    tables = data.get("groups", {})
    if not isinstance(tables, dict):
        problems.append(
            f"{path}:{_line_of(text, 'groups')}: groups: must be tables such as [groups.workshop]"
        )
        tables = {}
    pinned: list[PinnedGroup] = []
    for name, table in tables.items():
        where = f"{path}:{_header_line(text, name)}: groups.{name}"
        group = _pinned_group(name, table, where, problems)
        if group is not None:
            pinned.append(group)
    if not allow and not pinned:
        problems.append(
            f"{path}:{_line_of(text, 'allow_new_groups')}: allow_new_groups = "
            "false with no [groups.NAME] table would refuse every register"
        )
    return GroupRules(tuple(pinned), allow)


def _pinned_group(name: str, table: Any, where: str, problems: list[str]) -> PinnedGroup | None:
    before = len(problems)
    problem = name_problem(name)
    if problem is not None:
        problems.append(f"{where}: the group name {problem}")
    if not isinstance(table, dict):
        problems.append(f"{where}: must be a table with at least a password")
        return None
    for key in table:
        if key not in GROUP_KEYS:
            near = difflib.get_close_matches(key, GROUP_KEYS, n=1, cutoff=0.7)
            hint = f" (did you mean {near[0]}?)" if near else ""
            problems.append(
                f"{where}: {key}: no such setting for a group{hint}; "
                f"a group has {', '.join(GROUP_KEYS)}"
            )
    password = _hash(table.get("password"), f"{where}: password", problems)
    description = table.get("description", "")
    if not isinstance(description, str):
        problems.append(f"{where}: description: must be a string")
    max_users = table.get("max_users", 0)
    if isinstance(max_users, bool) or not isinstance(max_users, int) or max_users < 0:
        problems.append(
            f"{where}: max_users: must be a whole number, 0 (the router's "
            "max_users_per_group) or more"
        )
    users_table = table.get("users", {})
    users: dict[str, PasswordHash] = {}
    if not isinstance(users_table, dict):
        problems.append(f'{where}: users: must be a table of user = "hash"')
        users_table = {}
    for user, value in users_table.items():
        problem = name_problem(user)
        if problem is not None:
            problems.append(f"{where}: users: the user name {problem}")
        hashed = _hash(value, f"{where}: users.{user}", problems)
        if hashed is not None:
            users[user] = hashed
    # Listing users makes them the group's roster, unless the file says others may join too.
    other_users = table.get("other_users", not users)
    if not isinstance(other_users, bool):
        problems.append(f"{where}: other_users: must be true or false")
    if len(problems) > before or password is None:
        return None
    return PinnedGroup(name, password, users, other_users, max_users, description)


def _hash(value: Any, where: str, problems: list[str]) -> PasswordHash | None:
    if value is None:
        problems.append(f"{where}: missing (make one with: tcposcrouter passwd)")
        return None
    if not isinstance(value, str):
        problems.append(f"{where}: must be a string made by tcposcrouter passwd")
        return None
    try:
        return PasswordHash.parse(value)
    except ValueError as exc:
        problems.append(f"{where}: {exc}")
        return None


def _header_line(text: str, group: str) -> int:
    quoted = rf"(?:{re.escape(group)}|\"{re.escape(group)}\"|'{re.escape(group)}')"
    for number, line in enumerate(text.splitlines(), 1):
        if re.match(rf"\s*\[\s*groups\s*\.\s*{quoted}\s*[\].]", line):
            return number
    return _line_of(text, "groups")

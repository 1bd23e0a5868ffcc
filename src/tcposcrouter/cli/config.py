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


_TABLE = re.compile(r"\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_KEY = re.compile(
    r"\s*((?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*'))*)\s*="
)


def _dotted(text: str) -> tuple[str, ...]:
    parts = re.findall(r"[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*'", text)
    return tuple(part.strip("\"'") for part in parts)


class KeyLines:
    """Where each key of a TOML file is written: (table path + key) → its line numbers, read
    line by line so that a problem is reported at the key's own line, in its own table, and a
    key written twice (which TOML refuses whole) can be named. Lines inside a multi-line
    string or array are skipped."""

    def __init__(self, text: str) -> None:
        self.lines: dict[tuple[str, ...], list[int]] = {}
        self.tables: dict[tuple[str, ...], list[int]] = {}
        table: tuple[str, ...] = ()
        open_brackets, in_string = 0, False
        for number, line in enumerate(text.splitlines(), 1):
            if in_string or open_brackets:
                in_string ^= line.count('"""') % 2 == 1
                open_brackets = max(0, open_brackets + line.count("[") - line.count("]"))
                continue
            header = _TABLE.match(line)
            if header is not None:
                table = _dotted(header.group(1))
                self.tables.setdefault(table, []).append(number)
                continue
            key = _KEY.match(line)
            if key is None:
                continue
            self.lines.setdefault(table + _dotted(key.group(1)), []).append(number)
            value = line[key.end() :]
            in_string = value.count('"""') % 2 == 1
            open_brackets = max(0, value.count("[") - value.count("]"))

    def of(self, *path: str) -> int:
        """The line `path` is first written on (a table's header for a table); 0 if not found."""
        found = self.lines.get(path) or self.tables.get(path)
        if not found:  # a table written only through its subtables: [groups.d.users]
            found = [n for t, ns in self.tables.items() if t[: len(path)] == path for n in ns]
        return min(found) if found else 0

    def written_twice(self) -> list[tuple[str, list[int]]]:
        """Keys and `[tables]` written more than once, with their lines."""
        keys = [(".".join(key), lines) for key, lines in self.lines.items() if len(lines) > 1]
        tables = [(f"[{'.'.join(t)}]", lines) for t, lines in self.tables.items() if len(lines) > 1]
        return keys + tables


def _not_toml(path: Path, error: Exception, lines: KeyLines) -> list[str]:
    """What is wrong with a file TOML refuses: a key written twice by name, else TOML's own
    words with their line in front."""
    twice = lines.written_twice()
    if twice and ("overwrite" in str(error).lower() or "twice" in str(error).lower()):
        return [
            f"{path}:{numbers[1]}: {key}: written twice (first at line {numbers[0]}); keep one"
            for key, numbers in twice
        ]
    said = str(error)
    at = re.search(r"\(at line (\d+), column \d+\)", said)
    if at is None:
        return [f"{path}: not TOML: {said}"]
    return [f"{path}:{at.group(1)}: not TOML: {said[: at.start()].strip()}"]


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
    lines = KeyLines(text)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(_not_toml(path, exc, lines)) from None
    keys = config_keys(parser, hidden=True)
    shown = config_keys(parser)
    problems: list[str] = []
    defaults: dict[str, Any] = {}
    if "groups" in data or "allow_new_groups" in data:
        defaults["group_rules"] = _group_rules(data, lines, str(path), set(keys), problems)
    for key, value in data.items():
        if key in FILE_ONLY_KEYS:
            continue
        where = f"{path}:{lines.of(key)}"
        action = keys.get(key)
        if action is None and isinstance(value, dict):
            inside = ", ".join(k for k in value if k in keys)
            move = f"; settings such as {inside} go" if inside else "; settings go"
            problems.append(
                f"{where}: [{key}]: no such table (the only tables are [groups.NAME]){move} at "
                "the top of the file, before any [table] line"
            )
            continue
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


def _group_rules(
    data: dict[str, Any], lines: KeyLines, path: str, settings: set[str], problems: list[str]
) -> GroupRules:
    """`allow_new_groups` and the `[groups.NAME]` tables; problems go into `problems`.
    `settings`: the router's own keys, to tell one written under a group's table."""
    allow = data.get("allow_new_groups", True)
    if not isinstance(allow, bool):
        problems.append(
            f"{path}:{lines.of('allow_new_groups')}: allow_new_groups: must be true or false"
        )
        allow = True
    tables = data.get("groups", {})
    if not isinstance(tables, dict):
        problems.append(
            f"{path}:{lines.of('groups')}: groups: must be tables such as [groups.workshop]"
        )
        tables = {}
    pinned: list[PinnedGroup] = []
    for name, table in tables.items():
        group = _pinned_group(name, table, path, lines, settings, problems)
        if group is not None:
            pinned.append(group)
    if not allow and not pinned:
        problems.append(
            f"{path}:{lines.of('allow_new_groups')}: allow_new_groups = "
            "false with no [groups.NAME] table would refuse every register"
        )
    return GroupRules(tuple(pinned), allow)


def _not_a_group_key(key: str, where: str, settings: set[str]) -> str:
    if key in settings or key == "allow_new_groups":
        return (
            f"{where}: {key} is a setting of the router, not of a group: move it above the "
            "first [groups.…] line (in TOML every key after a [table] line belongs to that table)"
        )
    near = difflib.get_close_matches(key, GROUP_KEYS, n=1, cutoff=0.7)
    hint = f" (did you mean {near[0]}?)" if near else ""
    return f"{where}: {key}: no such setting for a group{hint}; a group has {', '.join(GROUP_KEYS)}"


def _pinned_group(
    name: str, table: Any, path: str, lines: KeyLines, settings: set[str], problems: list[str]
) -> PinnedGroup | None:
    def at(*key: str) -> str:
        """Where `key` of this group is written, for its problem's line."""
        return f"{path}:{lines.of('groups', name, *key) or lines.of('groups', name)}: groups.{name}"

    before = len(problems)
    problem = name_problem(name)
    if problem is not None:
        problems.append(f"{at()}: the group name {problem}")
    if not isinstance(table, dict):
        problems.append(f"{at()}: must be a table with at least a password")
        return None
    for key in table:
        if key not in GROUP_KEYS:
            problems.append(_not_a_group_key(key, at(key), settings))
    password = _hash(table.get("password"), f"{at('password')}: password", problems)
    description = table.get("description", "")
    if not isinstance(description, str):
        problems.append(f"{at('description')}: description: must be a string")
    max_users = table.get("max_users", 0)
    if isinstance(max_users, bool) or not isinstance(max_users, int) or max_users < 0:
        problems.append(
            f"{at('max_users')}: max_users: must be a whole number, 0 (the router's "
            "max_users_per_group) or more"
        )
    users_table = table.get("users", {})
    users: dict[str, PasswordHash] = {}
    if not isinstance(users_table, dict):
        problems.append(f'{at("users")}: users: must be a table of user = "hash"')
        users_table = {}
    for user, value in users_table.items():
        problem = name_problem(user)
        if problem is not None:
            problems.append(f"{at('users', user)}: users: the user name {problem}")
        hashed = _hash(value, f"{at('users', user)}: users.{user}", problems)
        if hashed is not None:
            users[user] = hashed
    # Listing users makes them the group's roster, unless the file says others may join too.
    other_users = table.get("other_users", not users)
    if not isinstance(other_users, bool):
        problems.append(f"{at('other_users')}: other_users: must be true or false")
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

"""The configuration file: every flag has a key, flags win over the file, and a bad file is
explained line by line."""

from __future__ import annotations

import argparse
import io
import re
from pathlib import Path

import pytest

from tcposcrouter.cli.config import GROUP_KEYS, ConfigError, config_keys, read_config
from tcposcrouter.cli.router import build_parser, check_config, main, parse_args, server_config
from tcposcrouter.core.auth import PasswordHash
from tcposcrouter.core.pinned import GroupRules

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "tcposcrouter.toml"


def value_for(action: argparse.Action) -> tuple[str, object]:
    """A TOML value for the key of `action`, other than its default, and what it becomes."""
    if isinstance(action, argparse._StoreTrueAction):
        return "true", True
    if isinstance(action, argparse._CountAction):
        return "2", 2
    if isinstance(action, argparse._AppendAction):
        return '["127.0.0.2"]', ["127.0.0.2"]
    if action.choices is not None:
        other = next(c for c in action.choices if c != action.default)
        return f'"{other}"', other
    if action.dest == "admin_token":
        return '"t0ken"', "t0ken"
    if action.dest == "cluster":
        return '"redis://127.0.0.1:6379/0"', "redis://127.0.0.1:6379/0"
    if action.dest == "node_id":
        return '"n1"', "n1"
    if action.dest in ("log_dir", "tls_cert", "tls_key"):
        return '"/tmp/logs"', Path("/tmp/logs")
    return "7777", 7777


@pytest.mark.parametrize("key", sorted(config_keys(build_parser())))
def test_every_flag_has_a_key(key: str, tmp_path: Path) -> None:
    action = config_keys(build_parser())[key]
    text, expected = value_for(action)
    path = tmp_path / "c.toml"
    needs = {"tls_key": 'tls_cert = "/c.pem"\n', "workers": 'cluster = "redis://r:6379/0"\n'}
    path.write_text(f"{key} = {text}\n" + needs.get(key, ""))
    args = parse_args(["--config", str(path)])
    assert getattr(args, action.dest) == expected


def test_the_example_file_names_every_key_and_is_valid(tmp_path: Path) -> None:
    keys = set(config_keys(build_parser())) | {"allow_new_groups"}
    named = set(re.findall(r"^# (\w+) = ", EXAMPLE.read_text(), re.MULTILINE))
    assert named == keys
    assert set(re.findall(r"^#(\w+) = ", EXAMPLE.read_text(), re.MULTILINE)) >= set(GROUP_KEYS) - {
        "users"
    }
    assert read_config(build_parser(), EXAMPLE) == {}  # all commented out: the defaults
    # Every line uncommented, with real hashes and a real certificate, is a valid file.
    uncommented = re.sub(r"^# ?(\[|\w+ = )", r"\1", EXAMPLE.read_text(), flags=re.MULTILINE)
    uncommented = uncommented.replace('"$scrypt$…"', f'"{PasswordHash("pw").encode()}"')
    uncommented = uncommented.replace('"…"', '"secret"')
    every_key = tmp_path / "all.toml"
    every_key.write_text(uncommented)
    settings = read_config(build_parser(), every_key)
    assert set(settings) == {action.dest for action in config_keys(build_parser()).values()} | {
        "group_rules"
    }
    rules = settings["group_rules"]
    assert [g.name for g in rules.pinned] == ["workshop", "stage"]
    assert rules.pinned[0].description == "Tuesday class" and rules.pinned[0].max_users == 30
    assert set(rules.pinned[1].users) == {"alice", "bob"} and rules.pinned[1].other_users


PINNED = """
allow_new_groups = false

[groups.workshop]
password = "{hash}"
description = "Tuesday class"

[groups.stage.users]
alice = "{hash}"
[groups.stage]
password = "{hash}"
"""


def test_pinned_groups_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "groups.toml"
    path.write_text(PINNED.format(hash=PasswordHash("pw").encode()))
    rules = parse_args(["--config", str(path)]).group_rules
    assert not rules.allow_new_groups
    workshop, stage = rules.pinned
    assert workshop.name == "workshop" and workshop.other_users and workshop.password.matches("pw")
    assert not stage.other_users  # users listed: only they may join
    assert stage.users["alice"].matches("pw")
    assert server_config(parse_args(["--config", str(path)])).group_rules.names() == [
        "workshop",
        "stage",
    ]


def test_no_group_table_means_the_defaults() -> None:
    assert parse_args([]).group_rules == GroupRules()


def test_bad_groups_are_explained_line_by_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    good = PasswordHash("pw").encode()
    path.write_text(
        "allow_new_groups = 1\n"
        "[groups.a]\n"
        'password = "bandpass"\n'
        "[groups.b]\n"
        f'password = "{good}"\n'
        "max_user = 3\n"
        "[groups.c]\n"
        'description = "no password"\n'
        "[groups.d.users]\n"
        'ana = "plain"\n'
    )
    with pytest.raises(ConfigError) as error:
        read_config(build_parser(), path)
    problems = error.value.problems
    assert problems[0] == f"{path}:1: allow_new_groups: must be true or false"
    assert problems[1].startswith(f"{path}:3: groups.a: password: not a password hash")
    assert "tcposcrouter passwd" in problems[1]
    assert problems[2].startswith(f"{path}:6: groups.b: max_user: no such setting for a group")
    assert "did you mean max_users?" in problems[2]
    assert (
        problems[3] == f"{path}:7: groups.c: password: missing (make one with: tcposcrouter passwd)"
    )
    assert (
        problems[4] == f"{path}:9: groups.d: password: missing (make one with: tcposcrouter passwd)"
    )
    assert problems[5].startswith(f"{path}:10: groups.d: users.ana: not a password hash")
    assert len(problems) == 6


def test_a_closed_router_without_groups_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "closed.toml"
    path.write_text("allow_new_groups = false\n")
    with pytest.raises(ConfigError, match="would refuse every register"):
        read_config(build_parser(), path)


def test_the_passwd_helper_makes_a_hash_the_file_takes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("my band pass\n"))
    assert main(["passwd"]) == 0
    made = capsys.readouterr().out.strip()
    assert made.startswith("$scrypt$ln=14,")
    path = tmp_path / "c.toml"
    path.write_text(f'[groups.band]\npassword = "{made}"\n')
    assert check_config(path) == 0
    (band,) = parse_args(["--config", str(path)]).group_rules.pinned
    assert band.password.matches("my band pass") and not band.password.matches("my band pass\n")
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    assert main(["passwd"]) == 1  # an empty password protects nothing


def test_check_config_loads_the_certificate(tmp_path: Path) -> None:
    path = tmp_path / "tls.toml"
    (tmp_path / "cert.pem").write_text("not a certificate\n")
    path.write_text(f'tls_cert = "{tmp_path / "cert.pem"}"\n')
    assert check_config(path) == 2


def test_flags_win_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('osc_port = 1000\nmax_connections = 5\nhost = ["127.0.0.1"]\n')
    config = server_config(parse_args(["--config", str(path), "--osc-port", "2000"]))
    assert config.osc10_port == 2000  # the flag
    assert config.limits.max_connections == 5  # the file
    assert config.hosts == ["127.0.0.1"]


def test_a_bad_file_is_explained_line_by_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('# a comment\nosc_port = 70000\nmax_conections = 5\nquiet = "yes"\n')
    with pytest.raises(ConfigError) as error:
        read_config(build_parser(), path)
    problems = error.value.problems
    assert problems[0].startswith(f"{path}:2: osc_port:") and "not a TCP port" in problems[0]
    assert problems[1].startswith(f"{path}:3: max_conections: no such setting")
    assert "max_connections" in problems[1]  # the hint
    assert problems[2] == f"{path}:4: quiet: must be true or false"


def test_not_toml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("osc_port = 1\nthis is not toml\n")
    with pytest.raises(ConfigError, match=r"broken.toml:2: not TOML: Expected '='"):
        read_config(build_parser(), path)


def test_a_key_written_twice_is_named(tmp_path: Path) -> None:
    path = tmp_path / "twice.toml"
    path.write_text(
        'osc_port = 1000\n# the other port\nosc_port = 2000\n[groups.a]\npassword = "x"\n'
        '[groups.a]\ndescription = "again"\n'
    )
    with pytest.raises(ConfigError) as error:
        read_config(build_parser(), path)
    assert error.value.problems == [
        f"{path}:3: osc_port: written twice (first at line 1); keep one",
        f"{path}:6: [groups.a]: written twice (first at line 4); keep one",
    ]


def test_a_router_setting_under_a_group_is_told_at_its_own_line(tmp_path: Path) -> None:
    good = PasswordHash("pw").encode()
    path = tmp_path / "under.toml"
    path.write_text(
        f'osc_port = 1000\n[groups.band]\npassword = "{good}"\n\nmax_connections = 50\n'
        "max_users = 4\n"
    )
    with pytest.raises(ConfigError) as error:
        read_config(build_parser(), path)
    (problem,) = error.value.problems
    assert problem.startswith(f"{path}:5: groups.band: max_connections is a setting of the router")
    assert "move it above the first [groups.…] line" in problem


def test_a_table_of_its_own_for_settings_is_explained(tmp_path: Path) -> None:
    path = tmp_path / "limits.toml"
    path.write_text("osc_port = 1000\n\n[limits]\nmax_groups = 3\n")
    with pytest.raises(ConfigError) as error:
        read_config(build_parser(), path)
    assert error.value.problems == [
        f"{path}:3: [limits]: no such table (the only tables are [groups.NAME]); settings such "
        "as max_groups go at the top of the file, before any [table] line"
    ]


def test_check_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text("http_port = 8080\n")
    bad.write_text("http_port = -1\n")
    assert check_config(good) == 0 and "ok" in capsys.readouterr().out
    assert check_config(bad) == 2 and f"{bad}:1: http_port" in capsys.readouterr().err
    assert check_config(tmp_path / "missing.toml") == 2


def test_a_bad_file_stops_the_router_before_it_starts(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("max_groups = -3\n")
    with pytest.raises(SystemExit) as exit_:
        parse_args(["--config", str(path)])
    assert exit_.value.code == 2

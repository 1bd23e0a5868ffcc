"""The configuration file: every flag has a key, flags win over the file, and a bad file is
explained line by line."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from tcposcrouter.cli.config import ConfigError, config_keys, read_config
from tcposcrouter.cli.router import build_parser, check_config, parse_args, server_config

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
        return '"asyncio"', "asyncio"
    if action.dest == "admin_token":
        return '"t0ken"', "t0ken"
    if action.dest == "log_dir":
        return '"/tmp/logs"', Path("/tmp/logs")
    return "7777", 7777


@pytest.mark.parametrize("key", sorted(config_keys(build_parser())))
def test_every_flag_has_a_key(key: str, tmp_path: Path) -> None:
    action = config_keys(build_parser())[key]
    text, expected = value_for(action)
    path = tmp_path / "c.toml"
    path.write_text(f"{key} = {text}\n")
    args = parse_args(["--config", str(path)])
    assert getattr(args, action.dest) == expected


def test_the_example_file_names_every_key_and_is_valid(tmp_path: Path) -> None:
    keys = set(config_keys(build_parser()))
    named = set(re.findall(r"^# (\w+) = ", EXAMPLE.read_text(), re.MULTILINE))
    assert named == keys
    assert read_config(build_parser(), EXAMPLE) == {}  # all commented out: the defaults
    uncommented = re.sub(r"^# (\w+ = )", r"\1", EXAMPLE.read_text(), flags=re.MULTILINE)
    uncommented = uncommented.replace('"…"', '"secret"')
    every_key = tmp_path / "all.toml"
    every_key.write_text(uncommented)
    assert set(read_config(build_parser(), every_key)) == {
        action.dest for action in config_keys(build_parser()).values()
    }


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
    with pytest.raises(ConfigError, match="line 2"):
        read_config(build_parser(), path)


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

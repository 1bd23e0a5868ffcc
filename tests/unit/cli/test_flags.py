"""The router's flags (cli/flags.py): grouped as --help shows them, one way to switch a thing off,
the old spellings still taken."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tcposcrouter.cli.flags import HIDDEN_ALIASES, build_parser
from tcposcrouter.cli.router import (
    parse_args,
)


def test_help_is_grouped_with_only_the_generic_flags_under_options() -> None:
    text = build_parser().format_help()
    generic = text.split("options:\n", 1)[1].split("\n\n", 1)[0]
    flags = set(re.findall(r"^  (-[-\w]+)", generic, re.MULTILINE))
    assert flags == {"-h", "--version", "--config", "--check-config"}
    for heading in ("listening:", "web:", "TLS:", "cluster:", "limits:", "logging:"):
        assert f"\n{heading}" in text
    assert "--disable-" not in text  # the old spellings are not shown


@pytest.mark.parametrize(("old", "new"), sorted(HIDDEN_ALIASES.items()))
def test_the_old_way_to_switch_a_port_off_still_works(old: str, new: str, tmp_path: Path) -> None:
    assert vars(parse_args([old])) == vars(parse_args([new]))
    # ... in a configuration file too, where the keys are the flags without dashes.
    path = tmp_path / "old.toml"
    path.write_text(f"{old.lstrip('-').replace('-', '_')} = true\n")
    from_file = vars(parse_args(["--config", str(path)]))
    assert {**from_file, "config": None} == vars(parse_args([new]))


def test_one_way_to_switch_things_off() -> None:
    text = build_parser().format_help()
    offs = set(re.findall(r"(--(?:no|disable)-[-\w]+)", text))
    assert offs == {
        "--no-osc10",
        "--no-osc11",
        "--no-http",
        "--no-tls-osc10",
        "--no-tls-osc11",
        "--no-rate-limit",
    }


@pytest.mark.parametrize(
    "argv",
    [
        ["--osc-port", "70000"],
        ["--max-packet-size", "8"],
        ["--idle-timeout", "-1"],
        ["--idle-timeout", "nan"],
        ["--max-connections", "-5"],
    ],
)
def test_bad_values_are_refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        parse_args(argv)
    assert info.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()  # one line, no usage block in front
    assert line.startswith(f"tcposcrouter: argument {argv[0]}: ")
    assert line.endswith("; see tcposcrouter --help")

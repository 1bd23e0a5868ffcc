"""Argument errors in one line (cli/parser.py): a mistyped flag gets the nearest one."""

from __future__ import annotations

import pytest

from tcposcrouter.cli.router import (
    parse_args,
)


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("--max-conections", "--max-connections"),
        ("--osc-prot", "--osc-port"),
        ("--tls-certificate", "--tls-cert"),
        ("--http_port", "--http-port"),
    ],
)
def test_a_mistyped_flag_gets_the_nearest_one_in_one_line(
    typed: str, meant: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        parse_args([typed, "5"])
    assert info.value.code == 2
    assert capsys.readouterr().err == (
        f"tcposcrouter: {typed}: no such flag (did you mean {meant}?); see tcposcrouter --help\n"
    )


def test_a_flag_like_no_other_gets_no_guess(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--zzzzzz"])
    assert capsys.readouterr().err == (
        "tcposcrouter: --zzzzzz: no such flag; see tcposcrouter --help\n"
    )

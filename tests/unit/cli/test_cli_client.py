"""`tcposcrouter-client` at its edges (cli/client.py): any exception that is not a known failure
is a bug told in one line with exit 70, never a traceback; a silence is told, not left blank."""

from __future__ import annotations

import pytest

from tcposcrouter.cli import client
from tcposcrouter.cli.client import EXIT_BUG, main


def test_an_unexpected_exception_is_one_line_and_exit_70(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def broken(args: object) -> int:
        raise KeyError("surprise")

    monkeypatch.setattr(client, "_time", broken)
    assert main(["time"]) == EXIT_BUG
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(
        "tcposcrouter-client: unexpected error (KeyError: 'surprise'); this is a bug"
    )


def test_an_answer_that_never_comes_is_told_not_left_blank(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def silent(args: object) -> int:
        raise TimeoutError  # str() is empty: what once printed "cannot connect to …: "

    monkeypatch.setattr(client, "_time", silent)
    assert main(["time", "--server", "h:1"]) == 1
    assert capsys.readouterr().err == "tcposcrouter-client: h:1 did not answer in time\n"

"""`tcposcrouter passwd` (cli/passwd.py): a password read from standard input becomes the hash
the configuration file takes; an empty one is refused."""

from __future__ import annotations

import io

import pytest

from tcposcrouter.cli.passwd import main
from tcposcrouter.core.auth import PasswordHash


def test_a_password_on_standard_input_is_printed_as_a_stored_hash(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("sesame\n"))
    assert main([]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed.startswith("$scrypt$")
    stored = PasswordHash.parse(printed)
    assert stored.matches("sesame") and not stored.matches("sesame\n")


def test_an_empty_password_protects_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    assert main([]) == 1
    assert capsys.readouterr().err == "tcposcrouter passwd: an empty password protects nothing\n"

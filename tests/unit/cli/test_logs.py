"""Log lines: text or JSON lines, journald's format under systemd, levels changed on reload."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from tcposcrouter.cli.logs import JsonLines, LogSetup
from tcposcrouter.cli.router import parse_args


@pytest.fixture(autouse=True)
def fresh_loggers() -> Iterator[None]:
    root = logging.getLogger("tcposcrouter")
    kept = root.handlers[:]
    yield
    for handler in root.handlers[:]:
        if handler not in kept:
            root.removeHandler(handler)
            handler.close()
    for name in ("tcposcrouter.hub", "tcposcrouter.server"):
        logging.getLogger(name).setLevel(logging.NOTSET)


def record(message: str, **extra: object) -> logging.LogRecord:
    made = logging.makeLogRecord(
        {"name": "tcposcrouter.hub", "levelno": logging.INFO, "levelname": "INFO", "msg": message}
    )
    made.created = 1_780_000_000.25
    for key, value in extra.items():
        setattr(made, key, value)
    return made


def test_json_lines_carry_one_field_per_item() -> None:
    line = JsonLines().format(record("register %s", args=None, console=True, group="band"))
    assert json.loads(line) == {
        "time": "2026-05-28T20:26:40.250Z",
        "level": "info",
        "logger": "tcposcrouter.hub",
        "message": "register %s",
        "group": "band",
    }


def test_a_json_log_file_and_console(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = parse_args(["--log-format", "json", "--log-dir", str(tmp_path), "-v"])
    LogSetup(args)
    logging.getLogger("tcposcrouter.hub").info("leave %s", "ana@band [192.0.2.1:40000]")
    written = (tmp_path / "tcposcrouter.log").read_text().splitlines()
    assert json.loads(written[-1])["message"] == "leave ana@band [192.0.2.1:40000]"
    assert json.loads(capsys.readouterr().err.splitlines()[-1])["level"] == "info"


def test_under_systemd_text_lines_leave_the_time_to_journald(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", "8:12345")
    LogSetup(parse_args([]))
    logging.getLogger("tcposcrouter").warning("the open file limit is low")
    assert capsys.readouterr().err == "WARNING tcposcrouter: the open file limit is low\n"


def test_a_reload_changes_the_levels(capsys: pytest.CaptureFixture[str]) -> None:
    setup = LogSetup(parse_args([]))
    hub = logging.getLogger("tcposcrouter.hub")
    hub.info("not shown")
    setup.apply(parse_args(["-v"]))
    hub.info("shown after the reload")
    setup.apply(parse_args(["-q"]))
    hub.warning("not shown either")
    logging.getLogger("tcposcrouter").info("nor this", extra={"console": True})
    hub.error("errors still are")
    err = capsys.readouterr().err
    assert "shown after the reload" in err and "errors still are" in err
    assert "not shown" not in err and "nor this" not in err

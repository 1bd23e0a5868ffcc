"""Where the router's log lines go and how they look: the console (stderr, which journald
reads under systemd), an optional rotating file, as text or as JSON lines.

Under systemd (`$JOURNAL_STREAM` set) text lines carry no timestamp: journald stamps every line
itself. JSON lines (`--log-format json`) carry one field per item, for log shippers.

`LogSetup.apply` can run again on a reload: it changes levels, never handlers.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import logging.handlers
import os
import sys
from typing import Any

__all__ = ["JsonLines", "LogSetup"]

# A log file rotates at 10 MB and keeps 5 old files: weeks of connect/leave lines of a busy
# public server, and a bound on the disk a chatty attacker can fill.
LOG_FILE_BYTES = 10 * 1024 * 1024
LOG_FILE_BACKUPS = 5
# The loggers of per-connection lines.
_CONNECTION_LOGGERS = ("tcposcrouter.hub", "tcposcrouter.server")
_STANDARD_FIELDS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonLines(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, and whatever a
    call passed in `extra` (but `console`, which only picks the handler)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_FIELDS and key != "console":
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class _ConsoleFilter(logging.Filter):
    """Let through records at the console level, and the few marked for the console."""

    def __init__(self) -> None:
        super().__init__()
        self.level = logging.WARNING

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self.level or getattr(record, "console", False)


class LogSetup:
    def __init__(self, args: argparse.Namespace) -> None:
        root = self._root = logging.getLogger("tcposcrouter")
        root.propagate = False
        formatter: logging.Formatter
        if args.log_format == "json":
            formatter = JsonLines()
        elif os.environ.get("JOURNAL_STREAM"):
            formatter = logging.Formatter("%(levelname)s %(name)s: %(message)s")
        else:
            formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._console = logging.StreamHandler(sys.stderr)
        self._console.setFormatter(formatter)
        self._console_filter = _ConsoleFilter()
        self._console.addFilter(self._console_filter)
        root.addHandler(self._console)
        self._file: logging.Handler | None = None
        if args.log_dir is not None:
            args.log_dir.mkdir(parents=True, exist_ok=True)
            # Nodes of a cluster (--workers' processes among them) may share a folder.
            name = "tcposcrouter.log" if not args.node_id else f"tcposcrouter-{args.node_id}.log"
            self._file = logging.handlers.RotatingFileHandler(
                args.log_dir / name,
                maxBytes=LOG_FILE_BYTES,
                backupCount=LOG_FILE_BACKUPS,
                encoding="utf-8",
            )
            # A file is read later, by a person or a shipper: always with its timestamps.
            self._file.setFormatter(
                JsonLines()
                if args.log_format == "json"
                else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
            )
            root.addHandler(self._file)
        self.apply(args)

    def apply(self, args: argparse.Namespace) -> None:
        """Set the levels `args` asks for (-v, -vv, -q)."""
        debug = args.verbose >= 2
        self._root.setLevel(logging.DEBUG if debug else logging.INFO)
        if args.quiet:
            # Errors only: the handler's level keeps out even the lines marked for the console.
            self._console_filter.level = logging.ERROR
            self._console.setLevel(logging.ERROR)
        else:
            self._console.setLevel(logging.NOTSET)
            self._console_filter.level = {0: logging.WARNING, 1: logging.INFO}.get(
                args.verbose, logging.DEBUG
            )
        if self._file is not None:
            self._file.setLevel(logging.DEBUG if debug else logging.INFO)
        # Nothing would show the per-connection lines: do not even make them (a storm of
        # registers makes thousands).
        quiet = self._file is None and args.verbose == 0
        for name in _CONNECTION_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING if quiet else logging.NOTSET)

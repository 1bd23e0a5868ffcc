"""Real peer programs (sclang, pd) for the interop tests."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

__all__ = ["REQUIRE_PEERS", "PeerProgram", "require_program", "sclang_program"]

# With CI set, a test that needs a real peer program (sclang, pd) fails when it is missing
# instead of skipping: CI installs them, so a skip there would hide a broken install.
REQUIRE_PEERS = bool(os.environ.get("CI"))


def require_program(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (Debian: see scripts/install-system-packages)"
        if REQUIRE_PEERS:
            pytest.fail(message + "; CI is set, so this is a failure, not a skip")
        pytest.skip(message)
    return path


def hyperdisco_classes() -> Path:
    """The class folder of HyperDisCo (OSCRouterClient, SyncText), the real peer the quark must
    work with, kept beside the repository (../shared/peers/HyperDisCo) and loaded unchanged; or
    where HYPERDISCO_CLASSES says. A clean clone made elsewhere (CI's) looks beside the
    repository it was cloned from."""
    named = os.environ.get("HYPERDISCO_CLASSES")
    here = Path(__file__).resolve()
    places = list(here.parents)
    origin = subprocess.run(
        ["git", "-C", str(here.parent), "config", "--get", "remote.origin.url"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    if origin and Path(origin).is_dir():  # cloned from a folder on this machine
        places += list(Path(origin).resolve().parents)
    candidates = [Path(named)] if named else []
    candidates += [up / "shared" / "peers" / "HyperDisCo" / "Classes" for up in places]
    for folder in candidates:
        if (folder / "SyncText.sc").is_file():
            return folder
    message = "HyperDisCo's classes are not beside the repository (../shared/peers/HyperDisCo)"
    if REQUIRE_PEERS:
        pytest.fail(message + "; CI is set, so this is a failure, not a skip")
    pytest.skip(message)


class PeerProgram:
    """A real peer program (sclang, pd) run in its own process group, its output read by line.

    Both print marker lines the test waits for; a hard timeout guards every wait because a
    script that fails to compile makes sclang idle silently (docs/testing.md).
    """

    def __init__(self, command: list[str], env: dict[str, str], cwd: str | None = None) -> None:
        self.lines: list[str] = []
        self.times: list[float] = []  # when each line was read (time.monotonic())
        self._lock = threading.Lock()
        self.process = subprocess.Popen(
            command,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: sclang spawns helper processes
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            with self._lock:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self.times.append(time.monotonic())

    def wait_for(self, marker: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for line in self.lines:
                    if marker in line:
                        return line
            if self.process.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"no {marker!r} within {timeout} s; output:\n" + self.output())

    def printed(self, marker: str) -> list[tuple[float, str]]:
        """(when it was read, what follows `marker`) of every line so far with `marker`."""
        with self._lock:
            lines = list(zip(self.times, self.lines, strict=True))
        return [(at, line.split(marker, 1)[1].strip()) for at, line in lines if marker in line]

    def said(self, marker: str) -> list[str]:
        """What follows `marker` in every line so far with it."""
        return [text for _, text in self.printed(marker)]

    def output(self) -> str:
        with self._lock:
            return "\n".join(self.lines)

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        self._reader.join(5)
        if self.process.stdout is not None:
            self.process.stdout.close()


def sclang_program(
    script: Path,
    tmp_path: Path,
    env: dict[str, str] | None = None,
    udp_port: int = 0,
    classes: Sequence[Path] = (),
) -> PeerProgram:
    """`script` in a headless sclang (docs/testing.md), with `env` added to its environment
    and the class folders `classes` compiled into its library (a quark, as Quarks.install
    would add it)."""
    sclang = require_program("sclang")
    config = tmp_path / f"sclang_conf_{script.stem}_{time.monotonic_ns()}.yaml"
    included = ", ".join(json.dumps(str(folder)) for folder in classes)
    config.write_text(f"includePaths: [{included}]\nexcludePaths: []\npostInlineWarnings: false\n")
    environment = {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "QTWEBENGINE_DISABLE_SANDBOX": "1",
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        **(env or {}),
    }
    command = [sclang, "-D", "-u", str(udp_port), "-l", str(config), str(script)]
    return PeerProgram(command, environment)

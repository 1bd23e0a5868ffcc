"""The router command (cli/router.py): flags reach its configuration as documented; its admin
token file is its own."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from tcposcrouter.cli.router import (
    LIMIT_FLAGS,
    limits_from,
    parse_args,
    server_config,
    write_admin_token,
)
from tcposcrouter.limits import Limits


def test_defaults_are_the_documented_ones() -> None:
    config = server_config(parse_args([]))
    assert (config.osc10_port, config.osc11_port, config.hosts) == (55555, 55556, None)
    assert config.http_port == 55557
    assert config.admin_token is None  # made at start-up and printed
    assert config.trusted_proxies == {"127.0.0.1", "::1"}
    assert config.limits == Limits()


def test_the_http_side_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    config = server_config(
        parse_args(["--http-port", "8080", "--admin-token", "t0k", "--trusted-proxy", "10.0.0.2"])
    )
    assert (config.http_port, config.admin_token) == (8080, "t0k")
    assert config.trusted_proxies == {"10.0.0.2"}
    assert server_config(parse_args(["--no-http"])).http_port is None
    monkeypatch.setenv("TCPOSCROUTER_ADMIN_TOKEN", "from-env")
    assert server_config(parse_args([])).admin_token == "from-env"
    # With the HTTP side on, the TCP ports may both be off; with everything off, nothing listens.
    assert server_config(parse_args(["--disable-osc10", "--disable-osc11"])).http_port == 55557
    with pytest.raises(SystemExit):
        parse_args(["--disable-osc10", "--disable-osc11", "--no-http"])


@pytest.mark.parametrize(("flag", "field"), [(row[0], row[1]) for row in LIMIT_FLAGS])
def test_every_limit_flag_sets_its_limit(flag: str, field: str) -> None:
    limits = limits_from(parse_args([flag, "7777"]))
    assert getattr(limits, field) == 7777
    assert getattr(Limits(), field) != 7777


def test_no_rate_limit_switches_both_rates_off() -> None:
    limits = limits_from(parse_args(["--no-rate-limit", "--rate-limit-packets", "10"]))
    assert (limits.rate_limit_packets, limits.rate_limit_bytes) == (0, 0)


def test_ports_hosts_and_disabling() -> None:
    config = server_config(
        parse_args(["--osc-port", "1", "--disable-osc11", "--host", "::1", "--host", "127.0.0.1"])
    )
    assert (config.osc10_port, config.osc11_port) == (1, None)
    assert config.hosts == ["::1", "127.0.0.1"]


def test_a_killed_routers_token_file_is_removed_by_the_next_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    dead = subprocess.Popen(["true"])  # a process that has certainly ended
    dead.wait()
    stale = tmp_path / f"tcposcrouter-admin-token-{dead.pid}"
    living = tmp_path / f"tcposcrouter-admin-token-{os.getppid()}"
    other = tmp_path / "tcposcrouter-admin-token-notes"
    for path in (stale, living, other):
        path.write_text("secret\n")
    path = write_admin_token("fresh")
    assert path.read_text() == "fresh\n" and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not stale.exists()
    assert living.exists() and other.exists()

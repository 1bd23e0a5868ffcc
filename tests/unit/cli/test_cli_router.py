"""Command-line flags reach the router's configuration as documented."""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tcposcrouter.cli.flags import HIDDEN_ALIASES, build_parser
from tcposcrouter.cli.router import (
    LIMIT_FLAGS,
    limits_from,
    parse_args,
    server_config,
    write_admin_token,
)
from tcposcrouter.cli.startup_errors import cannot_listen, cannot_load_certificate
from tcposcrouter.limits import Limits
from tcposcrouter.server.tls import TlsContext


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


def test_a_port_in_use_names_the_port_and_the_flag_that_moves_it() -> None:
    config = server_config(parse_args(["--http-port", "8080"]))
    in_use = OSError(
        errno.EADDRINUSE,
        "error while attempting to bind on address ('0.0.0.0', 8080): address already in use",
    )
    said = cannot_listen(in_use, config)
    assert said.startswith("cannot listen: port 8080 (the HTTP port) is in use: another router")
    assert said.endswith("with --http-port PORT")
    low = OSError(errno.EACCES, "error while attempting to bind on address ('::', 55555): denied")
    assert "root or CAP_NET_BIND_SERVICE" in cannot_listen(low, config)
    assert "--osc-port" in cannot_listen(low, config)
    away = OSError(errno.EADDRNOTAVAIL, "… bind on address ('10.9.9.9', 55555): cannot assign")
    assert cannot_listen(away, config).startswith("cannot listen on 10.9.9.9: it is not an address")


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


def test_a_certificate_that_does_not_load_names_the_file_and_what_to_give(tmp_path: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    made = {}
    for name in ("one", "two"):
        cert, key = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
        subprocess.run(
            [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True,
        )  # fmt: skip
        made[name] = (cert, key)
    (cert, key), (_, other_key) = made["one"], made["two"]

    def said(cert: Path, key: Path) -> str:
        with pytest.raises(OSError) as raised:
            TlsContext(cert, key)
        return cannot_load_certificate(raised.value, cert, key)

    missing = tmp_path / "nope.pem"
    assert (
        said(cert, missing) == f"cannot load the certificate: {missing} (--tls-key): no such file"
    )
    assert said(missing, missing) == (
        f"cannot load the certificate: {missing} (--tls-cert): no such file"
    )
    assert said(cert, other_key).startswith(
        f"cannot load the certificate: the key {other_key} does not belong to the "
        f"certificate {cert}"
    )
    assert "give it with --tls-key" in said(cert, cert)  # the key is not in the certificate's file

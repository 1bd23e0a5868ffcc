"""`tcposcrouter-client` at its edges: a typo gets the nearest flag in one line, any exception
that is not a known failure is a bug told in one line with exit 70, never a traceback."""

from __future__ import annotations

import pytest

from tcposcrouter.cli import client
from tcposcrouter.cli.client import EXIT_BUG, main
from tcposcrouter.client.aio import parse_server
from tcposcrouter.osc.framing import Framing


def test_a_typo_in_a_commands_flag_gets_the_nearest_flag(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["send", "--sever", "h:1", "/x"])
    assert info.value.code == 2
    assert capsys.readouterr().err == (
        "tcposcrouter-client: --sever: no such flag (did you mean --server?); "
        "see tcposcrouter-client --help\n"
    )


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


@pytest.mark.parametrize(
    ("server", "parsed"),
    [
        ("router.example.org", ("tcp", "router.example.org", 55555, Framing.LENGTH_PREFIX)),
        ("slip://router.example.org", ("tcp", "router.example.org", 55556, Framing.SLIP)),
        ("tls://router.example.org", ("tls", "router.example.org", 55558, Framing.LENGTH_PREFIX)),
        ("tls+slip://[::1]", ("tls", "::1", 55559, Framing.SLIP)),
        ("[::1]:6000", ("tcp", "::1", 6000, Framing.LENGTH_PREFIX)),
        ("osc.tcp://h:7000", ("tcp", "h", 7000, Framing.LENGTH_PREFIX)),
    ],
)
def test_a_port_left_out_is_the_routers_default_for_the_scheme(
    server: str, parsed: tuple[str, str, int, Framing]
) -> None:
    assert parse_server(server) == parsed


@pytest.mark.parametrize(
    ("server", "said"),
    [
        ("http://h:55557", "is a web page's address"),
        ("https://h", "wss://HOST:PORT/osc"),
        ("udp://h:1", "unknown scheme"),
        ("h:port", "not HOST:PORT"),
        ("h:70000", "is not a TCP port"),
    ],
)
def test_a_server_that_cannot_be_is_refused_with_what_to_write(server: str, said: str) -> None:
    with pytest.raises(ValueError, match=said.replace("(", r"\(").replace("/", "/")):
        parse_server(server)


def test_an_answer_that_never_comes_is_told_not_left_blank(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def silent(args: object) -> int:
        raise TimeoutError  # str() is empty: what once printed "cannot connect to …: "

    monkeypatch.setattr(client, "_time", silent)
    assert main(["time", "--server", "h:1"]) == 1
    assert capsys.readouterr().err == "tcposcrouter-client: h:1 did not answer in time\n"

"""The client's commands and flags (cli/client_flags.py): a typo in a command's flag gets the
nearest one."""

from __future__ import annotations

import pytest

from tcposcrouter.cli.client import main


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

"""Link's phase against the group's (bridge/link_phase.py): the error within the bar, either
way round, and tempos that are the same."""

from __future__ import annotations

import pytest

from tcposcrouter.bridge.link_phase import phase_error_ms, tempo_differs


def test_the_error_is_taken_within_the_bar_and_in_milliseconds() -> None:
    assert phase_error_ms(8.01, 8.0, 4.0, 120.0) == pytest.approx(5.0)  # 0.01 beat at 2/s
    assert phase_error_ms(7.99, 8.0, 4.0, 120.0) == pytest.approx(-5.0)
    # Link's beat numbers need not be the group's: only the place in the bar counts.
    assert phase_error_ms(100.01, 8.0, 4.0, 120.0) == pytest.approx(5.0)
    assert phase_error_ms(3.999, 0.0, 4.0, 60.0) == pytest.approx(-1.0)  # just before a bar
    assert phase_error_ms(1.0, 3.0, 4.0, 60.0) == pytest.approx(-2000.0)  # half a bar: -Q/2


def test_link_s_microsecond_tempo_is_the_same_tempo() -> None:
    assert not tempo_differs(130.00013, 130.0)
    assert tempo_differs(130.01, 130.0)

"""The error vocabulary (errors.py): every code is the wire's, a remote error carries code,
detail and whether it ends the connection."""

from __future__ import annotations

import re

from tcposcrouter.errors import ClusterRefused, ErrorCode, RemoteError, RouterError


def test_codes_are_lower_snake_case_wire_words_and_unique() -> None:
    codes = [value for name, value in vars(ErrorCode).items() if name.isupper()]
    assert len(codes) == len(set(codes))
    assert all(re.fullmatch(r"[a-z]+(_[a-z]+)*", code) for code in codes)
    assert {name.lower() for name, v in vars(ErrorCode).items() if name.isupper()} == set(codes)


def test_a_remote_error_says_its_code_and_detail() -> None:
    error = RemoteError(ErrorCode.AUTH_FAILED, "wrong password for group band", fatal=True)
    assert (error.code, error.detail, error.fatal) == ("auth_failed", error.detail, True)
    assert str(error) == "auth_failed: wrong password for group band"
    assert not RemoteError(ErrorCode.UNKNOWN_USER, "x").fatal  # by default the member stays
    assert issubclass(RemoteError, RouterError) and issubclass(ClusterRefused, RouterError)

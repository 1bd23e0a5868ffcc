"""Password hashes: salted, never kept or shown in clear."""

from __future__ import annotations

from tcposcrouter.core.auth import PasswordHash


def test_a_hash_matches_its_password_only() -> None:
    password = PasswordHash("bandpass")
    assert password.matches("bandpass")
    assert not password.matches("Bandpass") and not password.matches("")


def test_the_same_password_gets_a_new_salt_every_time() -> None:
    first, second = PasswordHash("same"), PasswordHash("same")
    assert first._key != second._key
    assert first.matches("same") and second.matches("same")


def test_any_text_works_and_nothing_shows() -> None:
    odd = "pässwörd \udcff with a lone surrogate"  # what a sloppy client may send
    assert PasswordHash(odd).matches(odd)
    assert "bandpass" not in repr(PasswordHash("bandpass"))

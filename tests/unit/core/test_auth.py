"""Password hashes: salted, never kept or shown in clear."""

from __future__ import annotations

from tcposcrouter.core.auth import PasswordHash


def test_a_hash_matches_its_password_only() -> None:
    password = PasswordHash("bandpass")
    assert password.matches("bandpass")
    assert not password.matches("Bandpass") and not password.matches("")


def test_the_same_password_gets_a_new_salt_every_time() -> None:
    hashes = [PasswordHash("same") for _ in range(3)]
    # Salted: equal passwords give different hashes, so a memory image does not show who
    # shares a password.
    assert len({h._salted_key for h in hashes}) == 3
    assert all(h.matches("same") for h in hashes)


def test_any_text_works_and_nothing_shows() -> None:
    odd = "pässwörd \udcff with a lone surrogate"  # what a sloppy client may send
    assert PasswordHash(odd).matches(odd)
    assert "bandpass" not in repr(PasswordHash("bandpass"))

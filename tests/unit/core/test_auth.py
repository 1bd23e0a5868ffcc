"""Password hashes: salted, never kept or shown in clear."""

from __future__ import annotations

import base64
import hashlib

import pytest

from tcposcrouter.core.auth import STORED, PasswordHash


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


def test_a_stored_hash_reads_back_and_describes_itself() -> None:
    made = PasswordHash("bandpass", STORED)
    text = made.encode()
    assert text.startswith("$scrypt$ln=14,r=8,p=1$") and "bandpass" not in text
    read = PasswordHash.parse(text)
    assert read.matches("bandpass") and not read.matches("bandpas")
    assert read.encode() == text


def test_a_hash_made_elsewhere_with_other_costs_is_read() -> None:
    # The PHC string of another scrypt implementation: its own salt length and cost.
    salt = bytes(range(12))
    key = hashlib.scrypt(b"x", salt=salt, n=1 << 10, r=4, p=2, dklen=24)
    b64 = base64.b64encode
    text = f"$scrypt$ln=10,r=4,p=2${b64(salt).decode()}${b64(key).decode().rstrip('=')}"
    assert PasswordHash.parse(text).matches("x")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("bandpass", "not a password hash"),
        ("$scrypt$ln=14,r=8,p=1$c2FsdHNhbHQ$", "not a password hash"),
        ("$scrypt$ln=40,r=8,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5", "out of range"),
        ("$scrypt$ln=14,r=8,p=1$c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5", "too short"),
        ("$scrypt$ln=14,r=8,p=1$c2FsdHNhbHQ$a2V5a", "not base64"),
    ],
)
def test_a_broken_hash_is_explained(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        PasswordHash.parse(text)


def test_a_hash_remembers_the_password_it_was_made_from_but_a_read_one_waits_for_a_check() -> None:
    made = PasswordHash("gpw")
    assert made.matches_quickly("gpw") is True
    assert made.matches_quickly("gpW") is None  # only scrypt may say no
    assert not made.matches("gpW")
    read = PasswordHash.parse(made.encode())
    assert read.matches_quickly("gpw") is None  # from a file: only scrypt says so, once
    assert read.matches("gpw")
    assert read.matches_quickly("gpw") is True


def test_a_keyed_hash_answers_at_once_and_never_leaves_its_process() -> None:
    keyed = PasswordHash.keyed("bandpass")
    assert keyed.matches_quickly("bandpass") is True
    assert keyed.matches_quickly("Bandpass") is False and keyed.matches_quickly("") is False
    assert keyed.matches("bandpass") and not keyed.matches("bandpas")
    odd = "pässwörd \udcff with a lone surrogate"
    assert PasswordHash.keyed(odd).matches_quickly(odd) is True
    # Salted too: equal passwords, different digests.
    twins = [PasswordHash.keyed("same") for _ in range(3)]
    assert len({h._memo for h in twins}) == 3
    assert "bandpass" not in repr(keyed)
    with pytest.raises(ValueError, match="cannot leave its process"):
        keyed.encode()

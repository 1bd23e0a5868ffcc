"""Group and user passwords, kept only as salted hashes and compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import os

__all__ = ["PasswordHash"]

# scrypt cost. Passwords here are shared secrets of a group that lives only while somebody is
# connected; they are never written anywhere, so the hash only has to make a memory image of the
# process useless for reading them off. Every register verifies two of them on the event loop,
# so the cost decides how fast an ensemble can rejoin after a router restart: with n=2**10
# (1.8 ms per hash on the 2-core reference machine) 1,000 clients registering at once waited 4 s
# and 5,000 ran into the 10 s register timeout; n=2**8 (0.46 ms) keeps that storm near a second.
_SCRYPT_N = 1 << 8
_SCRYPT_R = 8
_SCRYPT_P = 1
_SALT_BYTES = 16
_KEY_BYTES = 32


def _derive(password: bytes, salt: bytes) -> bytes:
    return hashlib.scrypt(
        password, salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=_KEY_BYTES
    )


class PasswordHash:
    """A salted scrypt hash of one password; the password itself is never kept."""

    # Salt and key in one bytes object: one allocation less for every user of a busy router.
    __slots__ = ("_salted_key",)

    def __init__(self, password: str) -> None:
        salt = os.urandom(_SALT_BYTES)
        self._salted_key = salt + _derive(password.encode("utf-8", "surrogatepass"), salt)

    def matches(self, password: str) -> bool:
        salt = self._salted_key[:_SALT_BYTES]
        candidate = _derive(password.encode("utf-8", "surrogatepass"), salt)
        return hmac.compare_digest(candidate, self._salted_key[_SALT_BYTES:])

    def __repr__(self) -> str:
        return "PasswordHash(<hidden>)"

"""Group and user passwords, kept only as salted hashes and compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import os

__all__ = ["PasswordHash"]

# scrypt cost. Passwords here are shared secrets of a group that lives only while somebody is
# connected, and every register verifies two of them on the event loop, so the cost is kept low:
# n=2**10 takes about 2 ms on the 2-core reference machine, enough to make a leaked memory image
# useless for anything but slow guessing, cheap enough that a thousand musicians can join at once.
_SCRYPT_N = 1 << 10
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

    __slots__ = ("_key", "_salt")

    def __init__(self, password: str) -> None:
        self._salt = os.urandom(_SALT_BYTES)
        self._key = _derive(password.encode("utf-8", "surrogatepass"), self._salt)

    def matches(self, password: str) -> bool:
        candidate = _derive(password.encode("utf-8", "surrogatepass"), self._salt)
        return hmac.compare_digest(candidate, self._key)

    def __repr__(self) -> str:
        return "PasswordHash(<hidden>)"

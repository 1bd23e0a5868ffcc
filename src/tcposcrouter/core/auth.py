"""Group and user passwords, kept only as salted hashes and compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import os

__all__ = ["PasswordHash"]

# scrypt cost. Passwords here are shared secrets of a group that lives only while somebody is
# connected; they are never written anywhere, so the hash only has to make a memory image of the
# process useless for reading them off. The checks run in worker threads (scrypt releases the
# GIL) and no longer stall routing, but their cost still decides how fast a whole server can
# rejoin after a restart (the SuperCollider client gives up after 3 s): n=2**6 is 0.17 ms per
# hash on the 2-core reference machine, and with the memo below 1,000 clients registering at
# once are all in after about half a second (n=2**7: 0.7 s; the figures are in the README).
_SCRYPT_N = 1 << 6
_SCRYPT_R = 8
_SCRYPT_P = 1
_SALT_BYTES = 16
_KEY_BYTES = 32

# Key of the memo below: random per process, never leaves it.
_MEMO_KEY = os.urandom(32)


def _derive(password: bytes, salt: bytes) -> bytes:
    return hashlib.scrypt(
        password, salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=_KEY_BYTES
    )


def _memo_of(password: bytes) -> bytes:
    return hmac.new(_MEMO_KEY, password, hashlib.sha256).digest()


class PasswordHash:
    """A salted scrypt hash of one password; the password itself is never kept.

    Once a password has been checked right with scrypt, the hash also remembers a keyed digest
    of it (HMAC-SHA256 with a key random to this process), and checks the same password against
    that: a class of forty joining one group costs one scrypt for the group password, not
    forty. A wrong password always costs a full scrypt, so online guessing is no cheaper. What
    a memory image of the router then gives away is the key and the digest, against which a
    guesser can try passwords faster than against scrypt; it still cannot read any password
    off. That is the trade for a festival's worth of clients getting back in at once.

    `matches` runs in worker threads while the event loop reads the object: it only ever
    replaces `_memo` as a whole, which is atomic.
    """

    # Salt and key in one bytes object: one allocation less for every user of a busy router.
    __slots__ = ("_memo", "_salted_key")

    def __init__(self, password: str) -> None:
        salt = os.urandom(_SALT_BYTES)
        self._salted_key = salt + _derive(_encode(password), salt)
        self._memo: bytes | None = None

    def matches(self, password: str) -> bool:
        secret = _encode(password)
        memo = self._memo
        if memo is not None and hmac.compare_digest(_memo_of(secret), memo):
            return True
        candidate = _derive(secret, self._salted_key[:_SALT_BYTES])
        if hmac.compare_digest(candidate, self._salted_key[_SALT_BYTES:]):
            self._memo = _memo_of(secret)
            return True
        return False

    def __repr__(self) -> str:
        return "PasswordHash(<hidden>)"


def _encode(password: str) -> bytes:
    return password.encode("utf-8", "surrogatepass")

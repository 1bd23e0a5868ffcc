"""Group and user passwords, kept only as salted hashes and compared in constant time.

Two kinds of hash. Those the router makes when a client creates a group or a user live only in
memory, while somebody is connected, and are cheap (see `EPHEMERAL`). Those an operator writes
into the configuration file for pinned groups (`tcposcrouter passwd` makes them) sit on a disk
for months, so they cost what a stored password hash should (see `STORED`), in the PHC string
format every scrypt implementation reads:

    $scrypt$ln=14,r=8,p=1$<salt, base64>$<key, base64>

(`ln` is log2 of scrypt's N; base64 without padding, as PHC strings write it).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from typing import NamedTuple

__all__ = ["EPHEMERAL", "STORED", "PasswordHash", "ScryptCost"]


class ScryptCost(NamedTuple):
    log_n: int
    r: int
    p: int

    def memory(self) -> int:
        """Bytes one hash takes (scrypt needs 128 * r * N)."""
        return 128 * self.r * (1 << self.log_n)


# Hashes made in memory for groups and users clients create. They are never written anywhere,
# so the hash only has to make a memory image of the process useless for reading them off. The
# checks run in worker threads (scrypt releases the GIL) and no longer stall routing, but their
# cost still decides how fast a whole server can rejoin after a restart (the SuperCollider
# client gives up after 3 s): N=2**6 is 0.17 ms per hash on the 2-core reference machine, and
# with the memo below 1,000 clients registering at once are all in after about half a second
# (N=2**7: 0.7 s; the figures are in docs/performance.md).
EPHEMERAL = ScryptCost(6, 8, 1)
# Hashes written into a configuration file: 16 MiB and tens of milliseconds each, so that a
# copied file is slow to attack. A class of forty logging into a pinned group pays it once for
# the group password (the memo below) and once per pinned user.
STORED = ScryptCost(14, 8, 1)
# What a hash read from a file may ask for: ln 20 is 1 GiB per check, already more than a small
# server should give one login.
_MAX_LOG_N = 20
_SALT_BYTES = 16
_KEY_BYTES = 32

_PHC = re.compile(
    r"\$scrypt\$ln=(?P<ln>\d{1,2}),r=(?P<r>\d{1,2}),p=(?P<p>\d{1,2})"
    r"\$(?P<salt>[A-Za-z0-9+/]+)\$(?P<key>[A-Za-z0-9+/]+)"
)

# Key of the memo below: random per process, never leaves it.
_MEMO_KEY = os.urandom(32)


def _derive(password: bytes, salt: bytes, cost: ScryptCost, length: int) -> bytes:
    return hashlib.scrypt(
        password,
        salt=salt,
        n=1 << cost.log_n,
        r=cost.r,
        p=cost.p,
        dklen=length,
        maxmem=cost.memory() + 1024 * 1024,
    )


def _memo_of(password: bytes) -> bytes:
    return hmac.new(_MEMO_KEY, password, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


class PasswordHash:
    """A salted scrypt hash of one password; the password itself is never kept.

    The hash also remembers a keyed digest of its password (HMAC-SHA256 with a key random to
    this process), from its making or once the password has been checked right with scrypt,
    and checks the same password against that: a class of forty joining one group costs one
    scrypt for the group password, not forty. A wrong password always costs a full scrypt, so
    online guessing is no cheaper. What a memory image of the router then gives away is the key
    and the digest, against which a guesser can try passwords faster than against scrypt; it
    still cannot read any password off. That is the trade for a festival's worth of clients
    getting back in at once.

    `matches` runs in worker threads while the event loop reads the object: it only ever
    replaces `_memo` as a whole, which is atomic.
    """

    # Salt and key in one bytes object: one allocation less for every user of a busy router.
    __slots__ = ("_cost", "_memo", "_salt_bytes", "_salted_key")

    def __init__(self, password: str, cost: ScryptCost = EPHEMERAL) -> None:
        salt = os.urandom(_SALT_BYTES)
        self._cost = cost
        self._salt_bytes = _SALT_BYTES
        secret = _encode(password)
        self._salted_key = salt + _derive(secret, salt, cost, _KEY_BYTES)
        self._memo: bytes | None = _memo_of(secret)

    @classmethod
    def parse(cls, text: str) -> PasswordHash:
        """A hash in the PHC string format (module docstring); raise ValueError saying what is
        wrong with it."""
        found = _PHC.fullmatch(text.strip())
        if found is None:
            raise ValueError(
                "not a password hash: expected $scrypt$ln=..,r=..,p=..$salt$key "
                "(make one with: tcposcrouter passwd)"
            )
        cost = ScryptCost(int(found["ln"]), int(found["r"]), int(found["p"]))
        if not (1 <= cost.log_n <= _MAX_LOG_N and cost.r >= 1 and cost.p >= 1):
            raise ValueError(f"scrypt cost out of range (ln 1..{_MAX_LOG_N}, r and p at least 1)")
        if cost.memory() > 1 << 30:
            raise ValueError("scrypt cost needs more than 1 GiB per check")
        try:
            salt, key = _unb64(found["salt"]), _unb64(found["key"])
        except (binascii.Error, ValueError):
            raise ValueError("the salt or the key is not base64") from None
        if len(salt) < 8 or len(key) < 16:
            raise ValueError("the salt or the key is too short")
        made = cls.__new__(cls)
        made._cost = cost
        made._salt_bytes = len(salt)
        made._salted_key = salt + key
        made._memo = None
        return made

    def encode(self) -> str:
        """The hash in the PHC string format, for a configuration file."""
        cost = self._cost
        salt, key = self._salted_key[: self._salt_bytes], self._salted_key[self._salt_bytes :]
        return f"$scrypt$ln={cost.log_n},r={cost.r},p={cost.p}${_b64(salt)}${_b64(key)}"

    def matches_remembered(self, password: str) -> bool:
        """Whether `password` is the one this hash remembers (see the class), without scrypt:
        False also when it remembers none yet. Cheap enough for the event loop."""
        memo = self._memo
        return memo is not None and hmac.compare_digest(_memo_of(_encode(password)), memo)

    def matches(self, password: str) -> bool:
        secret = _encode(password)
        memo = self._memo
        if memo is not None and hmac.compare_digest(_memo_of(secret), memo):
            return True
        salt, key = self._salted_key[: self._salt_bytes], self._salted_key[self._salt_bytes :]
        candidate = _derive(secret, salt, self._cost, len(key))
        if hmac.compare_digest(candidate, key):
            self._memo = _memo_of(secret)
            return True
        return False

    def __repr__(self) -> str:
        return "PasswordHash(<hidden>)"


def _encode(password: str) -> bytes:
    return password.encode("utf-8", "surrogatepass")

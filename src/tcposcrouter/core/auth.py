"""Group and user passwords, kept only as salted hashes and compared in constant time.

Three kinds of hash. Those the router makes when a client creates a group or a user on a router
without a cluster live only in this process's memory, while somebody is connected: a keyed
digest (`PasswordHash.keyed`), checked on the event loop in a microsecond. Those a node of a
cluster makes go into the shared store, where another process reads them: scrypt at a small
cost (`EPHEMERAL`). Those an operator writes into the configuration file for pinned groups
(`tcposcrouter passwd` makes them) sit on a disk for months, so they cost what a stored password
hash should (`STORED`). The scrypt ones are written in the PHC string format every scrypt
implementation reads:

    $scrypt$ln=14,r=8,p=1$<salt, base64>$<key, base64>

(`ln` is log2 of scrypt's N; base64 without padding, as PHC strings write it).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import itertools
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


# Hashes a node of a cluster makes for groups and users clients create: they go into the shared
# store only while somebody is connected. The checks run in worker threads (scrypt releases the
# GIL) and do not stall routing, but their cost still decides how fast a whole cluster can
# rejoin after a restart (the SuperCollider client gives up after 3 s): N=2**6 is 0.17 ms per
# hash on the 2-core reference machine (N=2**7 made a storm of 1,000 registers take 0.7 s; the
# figures are in docs/performance.md).
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

# Key of the keyed digests (the keyed hashes and the memo below): random per process, never
# leaves it.
_MEMO_KEY = os.urandom(32)
# Salts of keyed hashes: under a secret key a salt only has to differ from every other one in
# the process (equal passwords then give different digests), so a count does, without asking
# the kernel for random bytes twice per register.
_KEYED_SALTS = itertools.count()


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


def _memo_of(password: bytes, salt: bytes = b"") -> bytes:
    # BLAKE2b in its keyed mode is a MAC: 0.8 µs here against HMAC-SHA256's 2.7.
    return hashlib.blake2b(salt + password, key=_MEMO_KEY, digest_size=32).digest()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


class PasswordHash:
    """A salted hash of one password; the password itself is never kept.

    A scrypt hash also remembers a keyed digest of its password (keyed BLAKE2b, with a key random to
    this process), from its making or once the password has been checked right with scrypt,
    and checks the same password against that: a class of forty joining one group costs one
    scrypt for the group password, not forty. A wrong password costs a full scrypt.

    A keyed hash (`keyed`) is that digest alone, salted, for what never leaves the process: a
    memory image of the router gives away the key and the digests, against which a guesser can
    try passwords offline faster than against scrypt, but still reads no password off; and the
    memo of a scrypt hash made here gave the same away already. Online, a guesser meets the
    failed-login throttle (core/throttle.py), not the hash's cost.

    `matches` runs in worker threads while the event loop reads the object: it only ever
    replaces `_memo` as a whole, which is atomic.
    """

    # Salt and key in one bytes object: one allocation less for every user of a busy router.
    __slots__ = ("_cost", "_memo", "_salt_bytes", "_salted_key")

    _cost: ScryptCost | None  # None: a keyed hash (salt and digest in `_memo`)

    def __init__(self, password: str, cost: ScryptCost = EPHEMERAL) -> None:
        salt = os.urandom(_SALT_BYTES)
        self._cost = cost
        self._salt_bytes = _SALT_BYTES
        secret = _encode(password)
        self._salted_key = salt + _derive(secret, salt, cost, _KEY_BYTES)
        self._memo: bytes | None = _memo_of(secret)

    @classmethod
    def keyed(cls, password: str) -> PasswordHash:
        """A keyed digest of `password` (see the class), for a hash that never leaves this
        process: made and checked in about a microsecond, on the event loop."""
        made = cls.__new__(cls)
        salt = next(_KEYED_SALTS).to_bytes(_SALT_BYTES, "big")
        made._cost = None
        made._salt_bytes = _SALT_BYTES
        made._salted_key = salt
        made._memo = _memo_of(_encode(password), salt)
        return made

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
        """The hash in the PHC string format, for a configuration file or the cluster's store.
        A keyed hash has none: its key never leaves this process (ValueError)."""
        cost = self._cost
        if cost is None:
            raise ValueError("a keyed password hash cannot leave its process")
        salt, key = self._salted_key[: self._salt_bytes], self._salted_key[self._salt_bytes :]
        return f"$scrypt$ln={cost.log_n},r={cost.r},p={cost.p}${_b64(salt)}${_b64(key)}"

    def matches_quickly(self, password: str) -> bool | None:
        """Whether `password` matches, when that is known without scrypt (cheap enough for the
        event loop): a keyed hash always knows; a scrypt hash knows only the password it
        remembers (see the class), and says None for any other."""
        memo = self._memo
        if memo is None:
            return None
        if self._cost is None:
            return hmac.compare_digest(_memo_of(_encode(password), self._salted_key), memo)
        if hmac.compare_digest(_memo_of(_encode(password)), memo):
            return True
        return None

    def matches(self, password: str) -> bool:
        """Whether `password` matches; may run scrypt (then in a worker thread, not the loop)."""
        quickly = self.matches_quickly(password)
        if quickly is not None:
            return quickly
        assert self._cost is not None  # a keyed hash always answers quickly
        secret = _encode(password)
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

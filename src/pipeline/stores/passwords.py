"""Password hashes: scrypt (stdlib), a random salt per password, compared in constant time.

Stored as `scrypt$<n>$<r>$<p>$<salt hex>$<hash hex>`, so the cost can be raised later and old
hashes still verify.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from concurrent.futures import ThreadPoolExecutor

N, R, P, LENGTH = 2**14, 8, 1, 32  # About 50 ms and 16 MiB per hash: slow for guessing, fine for signing in.
MIN_LENGTH = 10
# Every hash runs on one of two threads: each takes 16 MiB and a core, so forty parallel guesses
# must not take 640 MiB and every core (the rest wait their turn, which also slows guessing). Two
# threads, not any two: glibc keeps a freed 16 MiB buffer in the allocating thread's arena, so
# hashing on forty threads left about 240 MB behind (`make hostile`); on two, at most two buffers.
HASHER = ThreadPoolExecutor(max_workers=2, thread_name_prefix="password-hash")


def _scrypt(password: bytes, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    return HASHER.submit(hashlib.scrypt, password, salt=salt, n=n, r=r, p=p, dklen=length).result()


def check_strength(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise ValueError(f"a password needs at least {MIN_LENGTH} characters")
    if len(password) > 1024:
        raise ValueError("a password may have at most 1024 characters")


def hash_password(password: str) -> str:
    check_strength(password)
    salt = secrets.token_bytes(16)
    digest = _scrypt(password.encode(), salt, N, R, P, LENGTH)
    return f"scrypt${N}${R}${P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = bytes.fromhex(digest)
        got = _scrypt(password.encode()[:1024], bytes.fromhex(salt), int(n), int(r), int(p), len(expected))
    except ValueError:  # A malformed stored hash never verifies.
        return False
    return hmac.compare_digest(got, expected)


# Verified against when a name is unknown, so a wrong name costs as long as a wrong password.
DECOY = hash_password(secrets.token_urlsafe(16))

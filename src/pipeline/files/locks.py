"""Exclusive locks between processes of one host, on a lock file (flock)."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def flocked(path: Path, *, wait: bool = True) -> Iterator[bool]:
    """An exclusive lock on `path` (made 0600 if missing) while the `with` lasts: True once held,
    or False at once when `wait` is off and another process holds it. Closing the descriptor
    releases it, and so does the death of the process that held it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)

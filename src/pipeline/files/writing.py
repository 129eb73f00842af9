"""Files we rewrite (a data set's manifest, its masks and copies) are written whole or not at all.

The bytes go to a temporary file in the same folder, are flushed to disk, and the file is renamed
over the old one; then the folder itself is flushed, so the rename survives a power cut too. A
crash or a full disk mid-write leaves the old file as it was (and at worst a hidden `.*.tmp` file
beside it), never half of the new one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def atomic_write(
    path: Path, data: bytes | str, mode: int = 0o600, scratch: Path | None = None, flush_folder: bool = True
) -> Path:
    """Write `data` to `path` whole or not at all; owner-only by default (these folders hold graphic
    images). `scratch`: where the temporary file goes (same file system; default beside `path`), for
    a store that sweeps what a killed writer left there. `flush_folder`: also flush the rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=scratch or path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if not flush_folder:
        return path
    with contextlib.suppress(OSError):  # Some file systems cannot open or flush a folder.
        folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    return path

"""Reading files we did not write (a jobs folder, an annotation pool, the images a label names).

Everything in such a folder is hostile: a named pipe blocks whoever opens it, a link to
`/dev/zero` never ends, a link out of the folder reads someone else's files. So a file is read
only when it is a *regular* file *inside* its root, decided on what was actually opened:

- the path is taken relative to the root, one component at a time (`openat`), each opened with
  `O_NOFOLLOW`: no symbolic link is followed anywhere along it, and none can be swapped in
  between a check and the open, because there is no separate check;
- the file is opened with `O_NONBLOCK` (a FIFO opens at once instead of waiting for a writer)
  and `fstat` on the descriptor must say "regular file" before a byte is read;
- at most `max_bytes` are read, whatever the size said a moment earlier (a file may grow).

These calls block on disk: callers run them in a worker thread, never on the event loop.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path, PurePosixPath

from pipeline.errors import PipelineError, UploadTooLarge

CHUNK_BYTES = 1024 * 1024
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_KINDS = {
    stat.S_IFDIR: "a folder",
    stat.S_IFIFO: "a named pipe",
    stat.S_IFCHR: "a device",
    stat.S_IFBLK: "a device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFLNK: "a symbolic link",
}


class FileRefused(PipelineError):
    """A file we will not read: missing, not a regular file, a link, or outside its root."""

    status = HTTPStatus.UNPROCESSABLE_ENTITY  # The request was understood; this file cannot be taken.


def _parts(relative: str | PurePosixPath) -> tuple[str, ...]:
    path = PurePosixPath(relative)
    odd = "\x00" in str(relative) or any(part in (".", "..") for part in path.parts)
    if odd or path.is_absolute() or not path.parts:
        raise FileRefused(f"{str(relative)!r}: name files relative to their folder, without '..'")
    return path.parts


def _refusal(name: str, error: OSError) -> FileRefused:
    if error.errno == errno.ELOOP:
        return FileRefused(f"{name}: is a symbolic link; links are not followed")
    if error.errno == errno.ENOTDIR:
        return FileRefused(f"{name}: a folder on its path is a symbolic link or not a folder")
    if error.errno == errno.ENOENT:
        return FileRefused(f"{name}: no such file")
    if error.errno in (errno.EACCES, errno.EPERM):
        return FileRefused(f"{name}: no permission to read it")
    if error.errno == errno.ENXIO:
        return FileRefused(f"{name}: is not a regular file (a socket or a device)")
    return FileRefused(f"{name}: cannot be read ({error.strerror or error})")


def open_inside(root: Path, relative: str | PurePosixPath, name: str | None = None) -> int:
    """A descriptor of the regular file at `relative` under `root`; the caller closes it."""
    shown = name or str(relative)
    parts = _parts(relative)
    try:
        folder = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)  # The root itself is configuration.
    except OSError as error:
        raise _refusal(shown, error) from None
    try:
        for part in parts[:-1]:
            inner = os.open(part, _DIRECTORY, dir_fd=folder)
            os.close(folder)
            folder = inner
        fd = os.open(parts[-1], _FILE, dir_fd=folder)
    except OSError as error:
        raise _refusal(shown, error) from None
    finally:
        os.close(folder)
    kind = stat.S_IFMT(os.fstat(fd).st_mode)
    if kind != stat.S_IFREG:
        os.close(fd)
        raise FileRefused(f"{shown}: is {_KINDS.get(kind, 'not a regular file')}, not a regular file")
    return fd


def read_inside(
    root: Path, relative: str | PurePosixPath, max_bytes: int, name: str | None = None, limit: str = "limit"
) -> bytes:
    """The bytes of the regular file at `relative` under `root`, refused past `max_bytes` (the
    message calls that cap `limit`)."""
    shown = name or str(relative)
    fd = open_inside(root, relative, shown)
    try:
        size = os.fstat(fd).st_size
        if size > max_bytes:
            raise UploadTooLarge(f"{shown}: {size:,} bytes is over the {limit} of {max_bytes:,} bytes")
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, min(CHUNK_BYTES, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:  # It grew while we read: the limit is on what is read.
                raise UploadTooLarge(f"{shown}: over the {limit} of {max_bytes:,} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_regular(path: Path, max_bytes: int, name: str | None = None, limit: str = "limit") -> bytes:
    """`read_inside` for one file in its own folder (a spooled upload): no link, no pipe, capped."""
    return read_inside(Path(path).parent, Path(path).name, max_bytes, name or Path(path).name, limit)


def walk_files(root: Path, folder: str | PurePosixPath = ".", most: int = 100_000) -> list[str]:
    """Every entry under `root/folder` that is not a folder, relative to `root`, sorted; hidden
    names (a leading dot) left out. Folders are entered only when they are real folders (a link
    to a folder is listed as an entry, to be refused when read). More than `most`: refused."""
    found: list[str] = []
    start = Path(root) if str(folder) in (".", "") else Path(root).joinpath(*_parts(folder))

    def entries(here: Path) -> Iterator[os.DirEntry]:
        with os.scandir(here) as listing:
            yield from listing

    todo = [start]
    while todo:
        for entry in entries(todo.pop()):
            if entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False):
                todo.append(Path(entry.path))
                continue
            found.append(os.path.relpath(entry.path, root))
            if len(found) > most:
                raise UploadTooLarge(f"{folder}: holds more than {most:,} files; split it into smaller folders")
    return sorted(found)

"""Files as hostile input (pipeline.files.reading) and files written whole (pipeline.files.writing):
only a regular file inside its root is read, decided on the open descriptor, never past a cap and
never blocking; a rewrite either happens whole or leaves the old file as it was."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pipeline.data.dataset import MANIFEST, Dataset, Sample
from pipeline.errors import UploadTooLarge
from pipeline.files import FileRefused, atomic_write, read_inside, read_regular, walk_files


@pytest.fixture
def root(tmp_path) -> Path:
    """A folder salted with everything that is not a regular file inside it."""
    inside = tmp_path / "root"
    (inside / "sub").mkdir(parents=True)
    (inside / "sub" / "photo.jpg").write_bytes(b"jpeg bytes")
    (inside / ".hidden.jpg").write_bytes(b"hidden")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.jpg").write_bytes(b"secret")
    os.mkfifo(inside / "pipe.jpg")
    (inside / "zero.jpg").symlink_to("/dev/zero")
    (inside / "escape.jpg").symlink_to(tmp_path / "outside" / "secret.jpg")
    (inside / "inner.jpg").symlink_to(inside / "sub" / "photo.jpg")  # Inside, but still a link.
    (inside / "linked").symlink_to(tmp_path / "outside")
    with socket.socket(socket.AF_UNIX) as listening:
        listening.bind(str(inside / "socket.jpg"))
    return inside


def test_a_regular_file_inside_its_root_is_read(root):
    assert read_inside(root, "sub/photo.jpg", 100) == b"jpeg bytes"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("pipe.jpg", "is a named pipe"),  # Opened without blocking: no writer ever comes.
        ("zero.jpg", "is a symbolic link"),  # Never followed, not even to a device.
        ("escape.jpg", "is a symbolic link"),
        ("inner.jpg", "is a symbolic link"),
        ("linked/secret.jpg", "a folder on its path is a symbolic link"),
        ("socket.jpg", "not a regular file"),
        ("sub", "is a folder"),
        ("absent.jpg", "no such file"),
        ("../outside/secret.jpg", "without '..'"),
        ("/etc/passwd", "without '..'"),
        ("a\x00b", "without '..'"),
    ],
)
def test_everything_else_is_refused_saying_why(root, name, reason):
    with pytest.raises(FileRefused, match=reason):
        read_inside(root, name, 100)


def test_a_device_is_refused_on_what_was_opened():
    with pytest.raises(FileRefused, match="is a device"):
        read_regular(Path("/dev/zero"), 100)


def test_the_cap_is_on_what_is_read(root):
    with pytest.raises(UploadTooLarge, match="over the limit of 5 bytes"):
        read_inside(root, "sub/photo.jpg", 5)


def test_the_walk_lists_links_and_pipes_as_entries_but_enters_no_linked_folder(root):
    assert walk_files(root) == sorted(
        ["escape.jpg", "inner.jpg", "linked", "pipe.jpg", "socket.jpg", "sub/photo.jpg", "zero.jpg"]
    )
    with pytest.raises(UploadTooLarge, match="more than 3 files"):
        walk_files(root, most=3)


def test_a_rewrite_is_whole_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "manifest.json"
    atomic_write(target, "old")
    before = target.stat().st_ino
    atomic_write(target, "new")
    assert target.read_text() == "new" and target.stat().st_ino != before, "a new file renamed over the old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]
    assert (target.stat().st_mode & 0o777) == 0o600


def test_a_data_set_whose_save_fails_midway_keeps_every_label(tmp_path):
    """A file-size limit (as a full disk would) stops the new manifest halfway: the old one stays whole."""
    dataset = Dataset(name="labels", samples=[Sample(image=f"gore/{i}.png", gore=True) for i in range(10)])
    dataset.save(tmp_path)
    bigger = Dataset(name="labels", samples=[Sample(image=f"gore/{i}.png", gore=True) for i in range(20_000)])
    bigger.save(tmp_path / "staged")
    script = textwrap.dedent(
        f"""
        import resource, signal
        from pipeline.data.dataset import Dataset
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
        Dataset.load({str(tmp_path / "staged")!r}).save({str(tmp_path)!r})
        """
    )
    failed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert failed.returncode != 0 and "File too large" in failed.stderr
    assert len(Dataset.load(tmp_path).samples) == 10, "every label of the last good save is there"
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == [MANIFEST]

"""The file-system store: original, <id>.json, censored child; atomic writes; safe ids."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipeline.errors import NotFound
from pipeline.serving.image_store import FileSystemStore
from pipeline.serving.schemas import CensorResult, ModelTags

ID = "ab" * 32


def _result(**changes) -> CensorResult:
    fields = dict(
        id=ID,
        filename="x.jpg",
        width=10,
        height=20,
        gore_probability=0.9,
        gore=True,
        threshold=0.5,
        seg_threshold=0.5,
        style="black",
        censored=f"/images/{ID}/censored",
        mask=f"/images/{ID}/mask",
        censored_fraction=0.25,
        phash="0" * 16,
        models=ModelTags(classifier="c:1", segmenter="s:1"),
        profile="demo",
        demo=True,
        dry_run=False,
        notice=None,
        timings_ms={"classify": 1.0},
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    return CensorResult(**{**fields, **changes})


def test_layout_is_one_folder_per_image(tmp_path):
    store = FileSystemStore(tmp_path)
    store.put_original(ID, ".jpg", b"jpeg bytes")
    store.put_artifact(ID, "censored", b"png")
    store.put_metadata(_result())
    folder = tmp_path / "images" / ID
    assert sorted(p.name for p in folder.iterdir()) == sorted(["original.jpg", "censored.png", f"{ID}.json"])
    assert store.get_metadata(ID) == _result()
    assert store.get_artifact(ID, "censored") == b"png"


def test_writes_leave_no_temporary_files_and_are_readable_by_others(tmp_path):
    store = FileSystemStore(tmp_path)
    store.put_metadata(_result())
    store.put_metadata(_result(gore_probability=0.7))
    files = list((tmp_path / "images" / ID).iterdir())
    assert [p.name for p in files] == [f"{ID}.json"]
    assert files[0].stat().st_mode & 0o044 == 0o044
    assert store.get_metadata(ID).gore_probability == 0.7


def test_an_original_is_written_once(tmp_path):
    store = FileSystemStore(tmp_path)
    store.put_original(ID, ".png", b"first")
    store.put_original(ID, ".png", b"second")
    assert (tmp_path / "images" / ID / "original.png").read_bytes() == b"first"


def test_unknown_images_and_artifacts(tmp_path):
    store = FileSystemStore(tmp_path)
    assert store.get_metadata(ID) is None
    with pytest.raises(NotFound, match="no censored image"):
        store.get_artifact(ID, "censored")


@pytest.mark.parametrize("bad_id", ["../../etc/passwd", "AB" * 32, "ab" * 31, "", "ab" * 32 + "/x"])
def test_ids_that_are_not_sha256_hex_are_refused(tmp_path, bad_id):
    with pytest.raises(NotFound, match="not an image id"):
        FileSystemStore(tmp_path).get_metadata(bad_id)


def test_deleting_artifacts_keeps_original_and_metadata(tmp_path):
    store = FileSystemStore(tmp_path)
    store.put_original(ID, ".jpg", b"x")
    store.put_artifact(ID, "censored", b"c")
    store.put_artifact(ID, "mask", b"m")
    store.put_metadata(_result())
    store.delete_artifacts(ID)
    assert sorted(p.name for p in (tmp_path / "images" / ID).iterdir()) == sorted(["original.jpg", f"{ID}.json"])

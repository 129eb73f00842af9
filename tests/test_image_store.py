"""The image store: originals written once, records that only ever gain information, renderings
that are never deleted, owner-only files, and one consistent record under concurrent writers."""

from __future__ import annotations

import json
import stat
import threading
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from pipeline.errors import NotFound
from pipeline.stores.images import FileSystemStore
from pipeline.stores.records import Analysis, ImageRecord, Review, Segmentation

ID = "ab" * 32
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def analysis(classifier="c:1", probability=0.9, segmented=False, at=T0) -> Analysis:
    segmentation = Segmentation(maps="maps-x.npy", size=8, segmented_at=at) if segmented else None
    return Analysis(
        classifier=classifier,
        segmenter="s:1",
        classifier_threshold=0.5,
        segmenter_threshold=0.5,
        profile="demo",
        demo=True,
        dry_run=False,
        gore_probability=probability,
        frame_probabilities=[probability],
        segmentation=segmentation,
        classified_at=at,
    )


def record(*analyses: Analysis, reviews=()) -> ImageRecord:
    return ImageRecord(
        id=ID,
        filename="x.jpg",
        format="JPEG",
        width=10,
        height=20,
        frames=1,
        phash="0" * 16,
        first_seen=T0,
        analyses={a.key: a for a in analyses},
        reviews=list(reviews),
    )


def test_layout_is_one_folder_per_image_and_files_are_owner_only(tmp_path):
    store = FileSystemStore(tmp_path)
    store.put_original(ID, ".jpg", b"jpeg bytes")
    store.put_rendering(ID, "censored-abc.png", b"png")
    store.merge(record(analysis()))
    folder = tmp_path / "images" / ID
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == [
        "censored-abc.png",
        "original.jpg",
        "record.json",
    ]
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    assert store.original(ID) == (b"jpeg bytes", ".jpg")
    assert store.rendering(ID, "censored-abc.png") == b"png" and store.rendering(ID, "mask-none.png") is None


def test_an_original_is_written_once(place):
    store = place.images()
    store.put_original(ID, ".png", b"first")
    store.put_original(ID, ".png", b"second")
    assert store.original(ID) == (b"first", ".png")


def test_an_analysis_only_ever_gains_information(place):
    store = place.images()
    store.merge(record(analysis(probability=0.9, segmented=False)))
    later = T0 + timedelta(hours=1)
    merged = store.merge(record(analysis(probability=0.1, segmented=True, at=later)))
    [kept] = merged.analyses.values()
    assert kept.gore_probability == 0.9 and kept.classified_at == T0, "what the models said is never rewritten"
    assert kept.segmentation is not None, "a segmentation may be added"
    again = store.merge(record(analysis(probability=0.9, segmented=False)))
    assert next(iter(again.analyses.values())).segmentation is not None, "and is never removed"
    assert store.record(ID) == again


def test_analyses_of_other_models_sit_side_by_side(place):
    store = place.images()
    store.merge(record(analysis("c:1", 0.9)))
    merged = store.merge(record(analysis("c:2", 0.2, at=T0 + timedelta(days=1))))
    assert sorted(merged.analyses) == ["c:1|s:1", "c:2|s:1"]
    assert merged.latest_analysis().classifier == "c:2"


def test_reviews_are_appended_and_the_latest_wins(place):
    store = place.images()
    store.merge(record(analysis()))
    first = Review(verdict="not_gore", by="alice", at=T0)
    second = Review(verdict="gore", by="bob", at=T0 + timedelta(minutes=5))
    store.merge(record(analysis(), reviews=[first]))
    merged = store.merge(record(analysis(), reviews=[second]))
    assert [r.by for r in merged.reviews] == ["alice", "bob"] and merged.latest_review().verdict == "gore"
    assert next(iter(merged.analyses.values())).gore_probability == 0.9, "a review never overwrites the analysis"


def test_concurrent_writers_leave_one_record_holding_everything(place):
    """Shared mode: two store objects, as two replicas would have, write the same record at once."""
    stores = [place.images(), place.images()]
    errors = []

    def write(i: int) -> None:
        try:
            review = Review(verdict="gore", by=f"user{i}", at=T0 + timedelta(seconds=i))
            stores[i % 2].merge(record(analysis(f"c:{i % 3}", segmented=i % 2 == 0), reviews=[review]))
        except Exception as error:  # Collected, so the test reports it.
            errors.append(error)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    stored = json.loads(stores[0].record(ID).model_dump_json())
    assert sorted(stored["analyses"]) == ["c:0|s:1", "c:1|s:1", "c:2|s:1"]
    assert len(stored["reviews"]) == 24, "no writer's review was lost"
    assert all(a["segmentation"] for a in stored["analyses"].values()), "every analysis kept its segmentation"
    if place.mode == "embedded":
        assert not [p for p in (place.data_dir / "images" / ID).iterdir() if p.suffix == ".tmp"]


def test_segmentation_maps_round_trip_as_uint8(place):
    store = place.images()
    maps = np.random.default_rng(0).integers(0, 256, (3, 8, 8), dtype=np.uint8)
    store.put_maps(ID, "maps-x.npy", maps)
    assert np.array_equal(store.maps(ID, "maps-x.npy"), maps)


def test_unknown_images_and_files(place):
    store = place.images()
    assert store.record(ID) is None
    with pytest.raises(NotFound, match="no image"):
        store.original(ID)
    with pytest.raises(NotFound, match="not a file"):
        store.rendering(ID, "../record.json")


@pytest.mark.parametrize("bad_id", ["../../etc/passwd", "AB" * 32, "ab" * 31, "", "ab" * 32 + "/x"])
def test_ids_that_are_not_sha256_hex_are_refused(place, bad_id):
    with pytest.raises(NotFound, match="not an image id"):
        place.images().record(bad_id)


def test_files_are_written_in_scratch_then_renamed_and_leftovers_are_swept(tmp_path):
    store = FileSystemStore(tmp_path)
    store.put_original(ID, ".jpg", b"bytes")
    assert list(store.scratch.iterdir()) == [], "a finished write leaves nothing in scratch"
    (store.scratch / "record.json.abc.tmp").write_bytes(b"half a file")  # What a SIGKILL mid-write leaves.
    assert store.sweep() == 1 and list(store.scratch.iterdir()) == []
    assert store.original(ID) == (b"bytes", ".jpg")


def test_the_shared_mode_keeps_records_in_the_database_and_files_in_the_bucket(place):
    if place.mode == "embedded":
        pytest.skip("the shared mode's layout")
    store = place.images()
    store.put_original(ID, ".jpg", b"jpeg bytes")
    store.put_rendering(ID, "censored-abc.png", b"png")
    store.merge(record(analysis()))
    objects = store.objects
    assert sorted(objects.names("images/")) == [f"images/{ID}/censored-abc.png", f"images/{ID}/original.jpg"]
    assert objects.get(f"images/{ID}/original.jpg") == b"jpeg bytes"
    assert all(key.startswith("images/images/") for key in _bucket_keys(objects)), "under the store's prefix"
    with store.database.connect() as db:
        version, stored = db.execute("SELECT version, record FROM records WHERE id = ?", (ID,)).fetchone()
    assert version == 1 and json.loads(stored)["id"] == ID
    store.merge(record(analysis(), reviews=[Review(verdict="gore", by="ana", at=T0)]))
    store.merge(record(analysis()))  # Nothing new: no write.
    with store.database.connect() as db:
        assert db.execute("SELECT version FROM records WHERE id = ?", (ID,)).fetchone()[0] == 2


def _bucket_keys(objects) -> list[str]:
    listing = objects.client.list_objects_v2(Bucket=objects.bucket)
    return [item["Key"] for item in listing.get("Contents", ())]

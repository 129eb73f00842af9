"""Known content: PDQ hashes, hash lists in the field's formats, and matching that fails closed.

Every image gets Meta's PDQ hash (the same 64 hex digits ThreatExchange and HMA make). Lists of
hashes come in and go out as HMA/ThreatExchange files; a list is labelled gore, not_gore or
info. An image within 31 bits of a hash on an enabled gore list is gore whatever the models
said, censored whole when its segmentation finds nothing; not_gore and info lists only inform.
"""

from __future__ import annotations

import csv
import io
import threading
import time
from datetime import UTC, datetime

import cv2
import numpy as np
import pytest
from PIL import Image
from test_image_store import ID, T0, analysis, record

from pipeline.data.synthetic import background
from pipeline.errors import Conflict, InvalidRequest, Unavailable
from pipeline.known.formats import read_list, write_list
from pipeline.known.index import HashIndex
from pipeline.known.lists import export_list, import_list
from pipeline.known.matcher import Matcher, known_gore
from pipeline.known.pdq import MATCH_DISTANCE, codes, distance, image_pdq, pdq_of
from pipeline.known.reviews import remember
from pipeline.serving.views import Defaults, Limits, Views
from pipeline.stores.hash_lists import HashLists, ListEntry
from pipeline.stores.images import FileSystemStore
from pipeline.stores.records import Pdq, Review


def photo(seed: int, size: int = 320) -> np.ndarray:
    """A photo-like picture: the demo data's synthetic background with things in it (PDQ needs
    some detail to say much: a smooth picture's hash is of low quality)."""
    rng = np.random.default_rng(seed)
    pixels = np.ascontiguousarray(background(rng, size, {}))
    for _ in range(12):
        x, y = (int(v) for v in rng.integers(0, size, 2))
        r = int(rng.integers(8, size // 6))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            cv2.circle(pixels, (x, y), r, colour, -1)
        else:
            cv2.rectangle(pixels, (x, y), (x + 2 * r, y + r), colour, -1)
    assert pdq_of(pixels).matchable
    return pixels


def jpeg(pixels: np.ndarray, quality: int = 50) -> np.ndarray:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(out.getvalue())).convert("RGB"))


def altered(pixels: np.ndarray) -> np.ndarray:
    """A slightly altered copy, as images come back: brighter, and re-encoded at JPEG quality 50."""
    return jpeg(np.clip(pixels.astype(int) + 20, 0, 255).astype(np.uint8))


def png_bytes(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


# ---- PDQ ----


def test_our_pdq_hashes_are_the_ones_threatexchange_makes():
    from threatexchange.signal_type.pdq.pdq_hasher import pdq_from_bytes

    for seed in range(3):
        pixels = photo(seed)
        ours = pdq_of(pixels)
        assert (ours.hash, ours.quality) == pdq_from_bytes(png_bytes(pixels))


def test_an_altered_copy_is_near_and_another_picture_is_far():
    original = pdq_of(photo(7))
    assert distance(original.hash, pdq_of(altered(photo(7))).hash) <= MATCH_DISTANCE
    assert distance(original.hash, pdq_of(photo(8)).hash) > MATCH_DISTANCE


def test_a_flat_image_has_a_low_quality_hash_that_matches_nothing(tmp_path):
    flat = pdq_of(np.full((200, 200, 3), 128, np.uint8))
    assert flat.quality <= 49 and not flat.matchable
    lists = HashLists.in_data_dir(tmp_path)
    lists.create("everything", "test", "gore", [ListEntry(hash=flat.hash)], by="t")
    assert Matcher(lists, refresh_s=0).match(flat) == []


# ---- the index ----


@pytest.mark.parametrize("tables", [False, True], ids=["compared-whole", "multi-index"])
def test_the_index_finds_every_hash_within_31_bits_and_none_further(monkeypatch, tables):
    """Small lists are compared whole; past TAIL codes, the multi-index tables (and a tail of codes
    added since) answer the same."""
    import pipeline.known.index

    if tables:
        monkeypatch.setattr(pipeline.known.index, "TAIL", 1000)
    rng = np.random.default_rng(0)
    stored = rng.integers(0, 256, (20_000, 32), dtype=np.uint8)
    index = HashIndex()
    index.add(stored[:15_000], np.arange(15_000) + 1000)
    index.add(stored[15_000:], np.arange(15_000, 20_000) + 1000)  # A tail, under a quarter of the tables.
    assert (index._tables is not None) is tables and len(index) == 20_000
    target = stored[123]
    for flipped, found in ((0, True), (1, True), (16, True), (31, True), (32, False), (40, False)):
        bits = np.unpackbits(target)
        bits[rng.choice(256, flipped, replace=False)] ^= 1
        query = np.packbits(bits)
        hits = dict(index.within(query))
        assert (1123 in hits) is found, flipped
        if found:
            assert hits[1123] == flipped
    # Exact: the same answers as comparing with every stored hash, near ones planted.
    for n, probe in enumerate(stored[::997]):
        probe = probe.copy()
        bits = np.unpackbits(probe)
        bits[rng.choice(256, n % 36, replace=False)] ^= 1
        probe = np.packbits(bits)
        brute = np.unpackbits(stored ^ probe, axis=1).sum(axis=1)
        assert sorted(k for k, _ in index.within(probe)) == sorted((np.nonzero(brute <= 31)[0] + 1000).tolist())
        assert sorted(k for k, _ in index.within(probe, 35)) == sorted((np.nonzero(brute <= 35)[0] + 1000).tolist())


# ---- the field's file formats ----

HASH_A, HASH_B = "a" * 64, "0123456789abcdef" * 4


def test_the_signal_file_of_threatexchange_and_hma_is_read_pdq_only():
    text = f"# a comment\npdq {HASH_A}\n\nvideo_md5 d41d8cd98f00b204e9800998ecf8427e\n{HASH_B.upper()}\n"
    parsed = read_list(text.splitlines(), "signals")
    assert [e.hash for e in parsed.entries] == [HASH_A, HASH_B]
    assert parsed.skipped == {"video_md5": 1}


def test_the_hma_csv_is_read_with_its_labels_as_tags_in_both_column_layouts():
    hma = f"{HASH_A},1234,5678,2026-11-02T10:00:00+00:00,gore media_type_photo\n"
    cli = f"{HASH_B},5678,2026-11-03T10:00:00+00:00,violence\n"
    parsed = read_list([hma, cli], "hma-csv")
    first, second = parsed.entries
    assert (first.hash, first.indicator_id, first.tags) == (HASH_A, "1234", ["gore", "media_type_photo"])
    assert first.at == datetime(2026, 11, 2, 10, tzinfo=UTC)
    assert (second.hash, second.indicator_id, second.tags) == (HASH_B, None, ["violence"])


@pytest.mark.parametrize(
    ("format", "text", "said"),
    [
        ("signals", f"pdq {HASH_A}\npdq not-a-hash\n", "line 2"),
        ("signals", f"pdq {HASH_A[:-1]}\n", "line 1"),
        ("hma-csv", f"{HASH_A},1,2,,gore\n{HASH_B},1\n", "line 2: expected 4 or 5 columns"),
        ("hma-csv", f"{HASH_A},1,2,yesterday,gore\n", "line 1"),
        ("hma-csv", f"{HASH_A},1,2,,{'x' * 10_000}\n", "longer than 4096 characters"),
    ],
)
def test_one_bad_row_refuses_the_whole_file_and_names_it(tmp_path, format, text, said):
    lists = HashLists.in_data_dir(tmp_path)
    with pytest.raises(InvalidRequest, match=said):
        import_list(lists, text.splitlines, name="bad", source="s", label="gore", format=format, by="t")
    assert lists.lists() == [], "nothing was imported"


def test_our_exports_are_read_by_threatexchange_itself(tmp_path):
    from threatexchange.cli.dataset.simple_serialization import HMASerialization
    from threatexchange.exchanges.collab_config import CollaborationConfigBase
    from threatexchange.exchanges.impl.file_api import FileCollaborationConfig, LocalFileSignalExchangeAPI

    entries = [ListEntry(hash=HASH_A, tags=["violence"]), ListEntry(hash=HASH_B)]
    rows = list(write_list(entries, "hma-csv", "gore"))

    read = [HMASerialization.from_csv_row(row, "HASH_PDQ") for row in csv.reader(rows)]
    assert [(r.indicator, sorted(r.rollup.labels)) for r in read] == [
        (HASH_A, ["gore", "violence"]),
        (HASH_B, ["gore"]),
    ]

    signals = tmp_path / "list.txt"
    signals.write_text("".join(write_list(entries, "signals")))
    assert issubclass(FileCollaborationConfig, CollaborationConfigBase)
    config = FileCollaborationConfig(
        name="ours", api=LocalFileSignalExchangeAPI.get_name(), enabled=True, filename=str(signals)
    )
    (delta,) = LocalFileSignalExchangeAPI.for_collab(config).fetch_iter([], None)
    assert set(delta.updates) == {("pdq", HASH_A), ("pdq", HASH_B)}


# ---- lists, matching, every process ----


def test_a_listed_picture_is_matched_in_every_process_and_lists_switch_without_a_restart(place):
    here, there = HashLists(place.tables("hash_lists.db")), HashLists(place.tables("hash_lists.db"))
    ours, elsewhere = Matcher(here, refresh_s=0), Matcher(there, refresh_s=0)  # Two replicas.
    listed, copy = pdq_of(photo(1)), pdq_of(altered(photo(1)))
    assert ours.match(copy) == [] and elsewhere.match(copy) == []

    lines = [f"pdq {listed.hash}\n", f"pdq {pdq_of(photo(2)).hash}\n"]
    made, read, _ = import_list(
        here, lambda: lines, name="partner", source="NGO", label="gore", format="signals", by="admin"
    )
    assert made.size == read == 2 and made.enabled
    (match,) = elsewhere.match(copy)
    assert (match.list_name, match.source, match.label) == ("partner", "NGO", "gore")
    assert match.distance == distance(listed.hash, copy.hash) and known_gore([match]) is match
    assert match.says == "on list partner (gore)"

    there.set_enabled("partner", False)
    assert ours.match(copy) == []
    here.set_enabled("partner", True)
    assert elsewhere.match(copy)[0].list_name == "partner"

    with pytest.raises(Conflict):
        import_list(there, lambda: lines, name="partner", source="again", label="gore", format="signals", by="admin")
    there.delete("partner")
    assert ours.match(copy) == [] and elsewhere.match(copy) == []


def test_our_reviews_become_a_list_that_exports_and_imports_into_a_fresh_deployment(tmp_path):
    lists = HashLists.in_data_dir(tmp_path / "here")
    reviewed = record(analysis()).model_copy(update={"pdq": pdq_of(photo(3))})
    review = Review(verdict="gore", by="ana", at=T0)
    assert remember(lists, reviewed, review)
    (match,) = Matcher(lists, refresh_s=0).match(pdq_of(altered(photo(3))))
    assert (match.list_name, match.label, match.by, match.image_id) == ("reviews", "gore", "ana", ID)
    assert match.says == "reviewed as gore by ana on 2026-01-01"

    exported = list(export_list(lists, "reviews", "hma-csv", label="gore"))
    assert len(exported) == 1 and exported[0].startswith(reviewed.pdq.hash)
    fresh = HashLists.in_data_dir(tmp_path / "fresh")
    import_list(fresh, lambda: exported, name="from-here", source="team A", label="gore", format="hma-csv", by="admin")
    (again,) = Matcher(fresh, refresh_s=0).match(pdq_of(altered(photo(3))))
    assert (again.list_name, again.label, again.tags) == ("from-here", "gore", ["gore"])


def test_a_list_deleted_and_imported_again_between_two_reads_is_read_afresh(place):
    """What the docs say to do to replace a list. A matcher that read the old list must not take
    the new one for it (SQLite would have given the new list the old one's ids)."""
    lists = HashLists(place.tables("hash_lists.db"))
    matcher = Matcher(lists, refresh_s=3600)
    old, new = pdq_of(photo(21)), pdq_of(photo(22))
    lists.create("partner", "NGO", "gore", [ListEntry(hash=old.hash)], by="admin")
    matcher.refresh(force=True)
    lists.delete("partner")
    lists.create("partner", "NGO", "gore", [ListEntry(hash=new.hash)], by="admin")
    matcher.refresh(force=True)
    assert [m.list_name for m in matcher.match(new)] == ["partner"]
    assert matcher.match(old) == []


class Gated(HashLists):
    """Hash lists whose rows come slowly (`gate`) or fail once (`fail_after`): a large list being
    read, a database that goes away halfway."""

    gate: threading.Event | None = None
    fail_after: int | None = None

    def hashes_after(self, list_id: int, after: int, most: int = 100_000) -> list[tuple[int, str]]:
        if self.gate is not None:
            self.gate.wait(30)
        if self.fail_after is not None and after >= self.fail_after:
            self.fail_after = None
            raise OSError("the database went away")
        return super().hashes_after(list_id, after, most=2)  # Two rows a read: the list comes in pieces.


def test_a_list_read_halfway_when_the_database_fails_is_read_to_its_end_next_time(tmp_path):
    lists = Gated.in_data_dir(tmp_path)
    pictures = [pdq_of(photo(30 + i)) for i in range(5)]
    lists.create("partner", "NGO", "gore", [ListEntry(hash=p.hash) for p in pictures], by="admin")
    matcher = Matcher(lists, refresh_s=0)
    matcher.refresh(force=True)  # Whole: the first read.
    more = [pdq_of(photo(40 + i)) for i in range(4)]
    with lists.database.connect() as db:  # Added to (as the reviews list is), read in pieces.
        HashLists._insert(db, lists.get("partner").id, [ListEntry(hash=p.hash) for p in more])
    lists.fail_after = max(row for row, _ in lists.hashes_after(lists.get("partner").id, 0, 100)) - 3
    with pytest.raises(OSError):
        matcher.refresh(force=True)
    assert all(matcher.match(p) for p in pictures + more), "every hash, the ones after the failure too"


def test_while_an_enabled_list_is_being_read_a_match_waits_then_refuses_rather_than_say_not_listed(tmp_path):
    lists = Gated.in_data_dir(tmp_path)
    listed = pdq_of(photo(23))
    lists.create("partner", "NGO", "gore", [ListEntry(hash=listed.hash)], by="admin")
    lists.gate = threading.Event()  # The list's rows do not come yet: a replica starting.
    matcher = Matcher(lists, refresh_s=0.05, wait_s=0.5)
    matcher.start()
    started = time.monotonic()
    with pytest.raises(Unavailable) as refused:
        matcher.match(listed)
    assert refused.value.status == 503 and "being read" in str(refused.value)
    assert 0.5 <= time.monotonic() - started < 5
    lists.gate.set()
    assert [m.label for m in matcher.match(listed)] == ["gore"], "matched once read whole"


def test_another_images_not_gore_review_never_undoes_a_gore_one(tmp_path):
    lists = HashLists.in_data_dir(tmp_path)
    pdq = pdq_of(photo(24))
    first = record(analysis()).model_copy(update={"pdq": pdq})
    other = first.model_copy(update={"id": "cd" * 32})
    remember(lists, first, Review(verdict="gore", by="ana", at=T0))
    remember(lists, other, Review(verdict="not_gore", by="bo", at=T0))
    matcher = Matcher(lists, refresh_s=0)
    assert [(m.label, m.by) for m in matcher.match(pdq)] == [("gore", "ana")]
    remember(lists, first, Review(verdict="not_gore", by="ana", at=T0))  # Ana corrects her own review.
    assert [(m.label, m.by) for m in matcher.match(pdq)] == [("not_gore", "ana")]


def test_a_picture_near_thousands_of_listed_hashes_is_one_answer_that_keeps_its_gore_match(tmp_path):
    lists = HashLists.in_data_dir(tmp_path)
    pdq = pdq_of(photo(25))
    bits = np.unpackbits(codes([pdq.hash])[0])
    rng = np.random.default_rng(0)

    def near(flips: int) -> str:
        changed = bits.copy()
        changed[rng.choice(256, flips, replace=False)] ^= 1
        return np.packbits(changed).tobytes().hex()

    lists.create("info", "NGO", "info", [ListEntry(hash=near(2)) for _ in range(1500)], by="admin")
    lists.create("gore", "NGO", "gore", [ListEntry(hash=near(12))], by="admin")
    matches = Matcher(lists, refresh_s=0).match(pdq)
    assert len(matches) == 100 and known_gore(matches) is not None and known_gore(matches).distance == 12


def test_hash_list_text_with_a_nul_character_is_refused_in_both_modes(place):
    lists = HashLists(place.tables("hash_lists.db"))
    with pytest.raises(InvalidRequest, match="NUL"):
        lists.create("partner", "NGO\x00", "gore", [ListEntry(hash="a" * 64)], by="admin")
    with pytest.raises(InvalidRequest, match="NUL"):
        lists.create("partner", "NGO", "gore", [ListEntry(hash="a" * 64, tags=["x\x00y"])], by="admin")
    assert lists.lists() == [], "nothing half made"


def test_an_animation_is_hashed_from_its_first_frame_that_says_enough():
    black, listed = np.zeros((320, 320, 3), np.uint8), photo(26)
    assert not pdq_of(black).matchable
    assert image_pdq([black, black, listed]) == pdq_of(listed)
    assert image_pdq([listed, black]) == pdq_of(listed)
    assert image_pdq([black]) == pdq_of(black), "a blank image keeps its (unmatchable) hash"


# ---- what a match does to an answer ----


def listed_views(tmp_path, label: str, pixels: np.ndarray) -> Views:
    lists = HashLists.in_data_dir(tmp_path)
    lists.create("list", "test", label, [ListEntry(hash=pdq_of(pixels).hash)], by="t")
    store = FileSystemStore(tmp_path)
    return Views(store, Defaults(None, None, "black", 0.0), Limits(10**7, 10**7, 10), Matcher(lists, refresh_s=0))


def stored(views: Views, pixels: np.ndarray, probability: float, gore_pixels: bool) -> tuple:
    """An image in the store as the pipeline leaves it: analysed, segmented (all zeros when
    `gore_pixels` is False: the segmenter found nothing)."""
    height, width = pixels.shape[:2]
    done = analysis(probability=probability, segmented=True)
    image = record(done).model_copy(update={"pdq": pdq_of(pixels), "width": width, "height": height})
    views.store.put_original(ID, ".png", png_bytes(pixels))
    maps = np.zeros((1, 8, 8), np.uint8)
    if gore_pixels:
        maps[0, :4, :4] = 255
    views.store.put_maps(ID, "maps-x.npy", maps)
    views.store.merge(image)
    return image, done


def censored(views: Views, image, done) -> np.ndarray:
    png = views.rendering(image, done, "censored", "black", 0.0)
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def test_a_gore_list_match_makes_an_image_gore_and_censors_it_whole_when_no_mask_comes_out(tmp_path):
    listed = photo(4)
    views = listed_views(tmp_path, "gore", listed)
    copy = altered(listed)
    image, done = stored(views, copy, probability=0.1, gore_pixels=False)
    result = views.result(image, done, views.defaults.options(done))
    assert result.gore_probability < result.threshold, "the models alone say not gore"
    assert result.gore is True and result.known[0].list_name == "list" and result.known[0].label == "gore"
    assert result.censored is not None and result.censored_fraction == 1.0
    assert censored(views, image, done).max() == 0, "every pixel hidden"


def test_a_gore_list_match_keeps_the_segmentation_when_there_is_one(tmp_path):
    listed = photo(5)
    views = listed_views(tmp_path, "gore", listed)
    image, done = stored(views, altered(listed), probability=0.1, gore_pixels=True)
    pixels = censored(views, image, done)
    height, width = pixels.shape[:2]
    hidden = (pixels.max(axis=2) == 0).mean()
    assert 0.1 < hidden < 0.4, "about the segmented quarter is hidden, not the whole image"
    assert (pixels[: height // 2 - 8, : width // 2 - 8].max(axis=2) == 0).mean() > 0.8
    assert pixels[height // 2 + 4 :, width // 2 + 4 :].mean() > 20, "the rest is shown"


def test_each_frame_of_a_listed_animation_the_segmenter_finds_nothing_in_is_hidden_whole(tmp_path):
    listed = photo(7)
    views = listed_views(tmp_path, "gore", listed)
    image, done = stored(views, altered(listed), probability=0.1, gore_pixels=True)
    maps = np.zeros((2, 8, 8), np.uint8)  # Frame 0 (the listed one): nothing found; frame 1: a quarter.
    maps[1, :4, :4] = 255
    assert views.censored_fraction(image, done, 0.0, maps, whole=True) == pytest.approx((1.0 + 0.25) / 2, abs=0.02)
    assert views.censored_fraction(image, done, 0.0, maps, whole=False) == pytest.approx(0.25 / 2, abs=0.02)


def test_a_not_gore_list_never_removes_censoring(tmp_path):
    listed = photo(6)
    views = listed_views(tmp_path, "not_gore", listed)
    image, done = stored(views, altered(listed), probability=0.9, gore_pixels=True)
    result = views.result(image, done, views.defaults.options(done))
    assert result.known[0].label == "not_gore", "shown to the reviewer"
    assert result.gore is True and result.verdict == "gore" and result.censored_fraction == pytest.approx(0.25, 0.1)


def test_an_image_is_not_known_by_its_own_review(tmp_path):
    lists = HashLists.in_data_dir(tmp_path)
    views = Views(FileSystemStore(tmp_path), Defaults(None, None, "black", 0.0), Limits(10**7, 10**7, 10))
    views = Views(views.store, views.defaults, views.limits, Matcher(lists, refresh_s=0))
    image = record(analysis()).model_copy(update={"pdq": pdq_of(photo(9))})
    remember(lists, image, Review(verdict="gore", by="ana", at=T0))
    assert views.known(image) == []
    other = image.model_copy(update={"id": "cd" * 32, "pdq": Pdq(hash=pdq_of(altered(photo(9))).hash, quality=100)})
    assert [m.by for m in views.known(other)] == ["ana"]
    assert codes([image.pdq.hash]).shape == (1, 32)


def test_records_from_before_pdq_gain_their_hash_so_the_lists_match_them(tmp_path):
    """`gore-censor hashes backfill`: an image stored before PDQ, on a gore list imported since, is
    known (and so censored) once its record has its hash; an original that cannot be read is said."""
    from typer.testing import CliRunner

    from pipeline.cli import app

    store = FileSystemStore(tmp_path)
    pixels = photo(11)
    old = record(analysis(probability=0.1)).model_copy(update={"width": 320, "height": 320})
    store.put_original(ID, ".png", png_bytes(pixels))
    store.merge(old)
    broken = old.model_copy(update={"id": "cd" * 32})
    store.put_original(broken.id, ".png", b"not a picture")
    store.merge(broken)
    lists = HashLists.in_data_dir(tmp_path)
    lists.create("partner", "test", "gore", [ListEntry(hash=pdq_of(altered(pixels)).hash)], by="t")
    views = Views(store, Defaults(None, None, "black", 0.0), Limits(10**7, 10**7, 10), Matcher(lists, refresh_s=0))
    assert views.known(store.record(ID)) == [], "no hash, no match"

    done = CliRunner().invoke(app, ["hashes", "backfill", "--data-dir", str(tmp_path)])
    assert done.exit_code == 0, done.output
    assert "1 record(s) gained a PDQ hash" in done.output and broken.id in done.output
    assert store.record(ID).pdq == pdq_of(pixels) and store.record(broken.id).pdq is None
    assert [m.list_name for m in views.known(store.record(ID))] == ["partner"]
    assert views.whole(store.record(ID)), "hidden whole if nothing is segmented"

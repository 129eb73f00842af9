"""The gallery index (SQLite, keyset paging) and the web app's people store, without a server."""

from __future__ import annotations

from datetime import timedelta

import pytest
from test_image_store import T0, analysis, record

from pipeline.errors import InvalidRequest
from pipeline.stores.gallery import GalleryIndex
from pipeline.stores.passwords import hash_password, verify_password
from pipeline.stores.people import People
from pipeline.stores.records import Review


def records(count: int):
    """`count` records, one a minute; every third likely gore, every fifth reviewed."""
    made = []
    for n in range(count):
        found = analysis(probability=0.9 if n % 3 == 0 else 0.1)
        reviews = [Review(verdict="not_gore", by="web:a", at=T0)] if n % 5 == 0 else []
        made.append(
            record(found, reviews=reviews).model_copy(
                update={
                    "id": f"{n:064x}",
                    "filename": f"case_{n:03d}%.png" if n == 7 else f"IMG_{n:03d}.png",
                    "first_seen": T0 + timedelta(minutes=n),
                    "phash": f"{(0xFF if n == 4 else n * 0x0101010101010101 % (1 << 64)):016x}",
                }
            )
        )
    return made


@pytest.fixture
def index(place):
    built = GalleryIndex(place.tables("index.db"), threshold_for=lambda a: 0.5)
    built.put_many(records(23))
    return built


def walk(index, kind="all", search="", size=4):
    seen, cursor = [], None
    while True:
        page = index.page(kind, search, after=cursor, size=size)
        seen += [row.id for row in page.rows]
        if page.older is None:
            return seen
        cursor = page.older


def test_keyset_pages_list_every_row_once_newest_first(index):
    seen = walk(index)
    assert seen == [f"{n:064x}" for n in reversed(range(23))]
    first = index.page(size=4)
    second = index.page(after=first.older, size=4)
    back = index.page(before=second.newer, size=4)
    assert [r.id for r in back.rows] == [r.id for r in first.rows] and back.newer is None


def test_filters_follow_the_latest_review_then_the_models(index):
    gore = {int(i, 16) for i in walk(index, "gore")}
    assert gore == {n for n in range(23) if n % 3 == 0 and n % 5 != 0}, "a review of not gore wins"
    assert {int(i, 16) for i in walk(index, "reviewed")} == {n for n in range(23) if n % 5 == 0}
    assert len(walk(index, "unreviewed")) + len(walk(index, "reviewed")) == 23
    assert len(walk(index, "not_gore")) + len(gore) == 23


def test_search_is_by_file_name_and_takes_wildcards_literally(index):
    assert [int(i, 16) for i in walk(index, search="img_01")] == list(reversed(range(10, 20)))
    assert [int(i, 16) for i in walk(index, search="%")] == [7], "% is a character, not a wildcard"
    assert walk(index, search="IMG_0_0") == [], "_ too (as a wildcard it would match IMG_010)"
    with pytest.raises(InvalidRequest):
        index.page(after="1.notanid", size=4)


def test_neighbours_and_near_duplicates(index):
    assert index.neighbour(f"{5:064x}") == f"{4:064x}" and index.neighbour(f"{5:064x}", older=False) == f"{6:064x}"
    assert index.neighbour(f"{0:064x}") is None
    near = index.near_by_phash(f"{0xFF:016x}", 2)
    assert near[0] == f"{4:064x}" and f"{0:064x}" not in near, "0xFF is 8 bits from 0"
    assert f"{0:064x}" in index.near_by_phash("0" * 16, 0)


def test_the_index_is_rebuilt_and_caught_up_from_the_records(place):
    made = records(5)
    unindexed = place.images()  # A store from before the index (or another program).
    for one in made[:3]:
        unindexed.merge(one)
    index = GalleryIndex(place.tables("index.db"), threshold_for=lambda a: 0.5)
    store = place.images(index)
    assert index.catch_up(store) == 3 and index.count() == 3
    store.merge(made[3])  # The store keeps its index current: whoever writes, it is told at once.
    assert index.count() == 4
    assert index.rebuild(store) == 4 and walk(index)[0] == made[3].id


def test_passwords_are_salted_scrypt_hashes():
    first, second = hash_password("correct horse battery"), hash_password("correct horse battery")
    assert first != second and first.startswith("scrypt$16384$8$1$")
    assert verify_password("correct horse battery", first) and not verify_password("correct horse batterY", first)
    assert not verify_password("anything", "not a hash")
    with pytest.raises(ValueError, match="at least 10"):
        hash_password("short")


def test_sessions_end_when_a_user_signs_out_is_disabled_or_changes_password(place):
    people = People(place.tables("access.db"))
    user = people.create_user("ana", ["analyst"], "a long enough password", "tests")
    assert people.sign_in("ana", "wrong password!", 1) is None and people.sign_in("nobody", "x" * 12, 1) is None
    secret, _ = people.sign_in("ANA", "a long enough password", 1)  # Names are case-insensitive.
    with pytest.raises(ValueError, match="already a user"):
        people.create_user("Ana", ["analyst"], "a long enough password", "tests")
    person = people.person(secret)
    assert person.user.name == "ana" and people.person(secret + "x") is None
    people.set_disabled(user.id, True)
    assert people.person(secret) is None and people.sign_in("ana", "a long enough password", 1) is None
    people.set_disabled(user.id, False)
    secret, _ = people.sign_in("ana", "a long enough password", 1)
    people.set_password(user.id, "another long password")
    assert people.person(secret) is None
    secret, _ = people.sign_in("ana", "another long password", 1)
    people.sign_out(people.person(secret).session_id)
    assert people.person(secret) is None
    expired, _ = people.sign_in("ana", "another long password", hours=-1)
    assert people.person(expired) is None


def test_ten_wrong_passwords_lock_the_name_for_a_while(place):
    people = People(place.tables("access.db"))
    people.create_user("bo", ["analyst"], "a long enough password", "tests")
    for _ in range(10):
        assert people.sign_in("bo", "not the password", 1) is None
    assert people.sign_in("bo", "a long enough password", 1) is None, "locked, even with the right password"


def test_exposure_adds_up_per_user_and_day(place):
    people = People(place.tables("access.db"))
    ana = people.create_user("ana", ["analyst"], "a long enough password", "tests")
    people.count_exposure(ana.id, originals=1, gore_pixels=100)
    people.count_exposure(ana.id, patches=2, gore_pixels=50, blurred=1)
    today = people.today(ana.id)
    assert (today.originals, today.patches, today.blurred, today.gore_pixels) == (1, 2, 1, 150)
    assert [d.user for d in people.exposure()] == ["ana"]


def test_near_duplicates_are_found_by_pdq_and_records_from_before_pdq_by_phash(place):
    """PDQ within 31 bits when the record has a hash good enough to match; else its pHash."""
    from pipeline.stores.records import Pdq

    base = int("ab" * 32, 16)

    def pdq(flips: int, quality: int = 100) -> Pdq:
        return Pdq(hash=f"{base ^ ((1 << flips) - 1):064x}", quality=quality)

    index = GalleryIndex(place.tables("index.db"), threshold_for=lambda a: 0.5)
    made = [
        record(analysis()).model_copy(update={"id": f"{n:064x}", "pdq": p, "phash": f"{n:016x}"})
        for n, p in enumerate([pdq(0), pdq(10), pdq(31), pdq(32), pdq(3, quality=40), None])
    ]
    index.put_many(made)
    assert index.near_duplicates(made[0], 0) == [f"{n:064x}" for n in (0, 1, 2)], "nearest first; 32 bits is not"
    assert index.near_duplicates(made[4], 0) == [f"{4:064x}"], "a low-quality hash: by pHash, itself only"
    older = index.near_duplicates(made[5], 1)
    assert older == index.near_by_phash(f"{5:016x}", 1) == [f"{n:064x}" for n in (5, 1, 4)], "no PDQ: by pHash"

"""The tables the stores keep, in both modes (SQLite files, or one PostgreSQL database): the same
SQL, the same answers, and the same guarantees when several processes (or replicas) ask at once."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import closing
from pathlib import Path

from pipeline.stores.access import AccessStore
from pipeline.stores.database import _for_psycopg, postgres_schema
from pipeline.stores.labels import LabelDecisions
from pipeline.stores.people import People


def at_once(count: int, work) -> list:
    """`work(n)` in `count` threads started together; their answers, in order. What a thread raised
    fails the caller (left to the thread, it would be only a warning, and the race would hide)."""
    answers: list = [None] * count
    raised: list[Exception] = []
    start = threading.Barrier(count)

    def run(n: int) -> None:
        start.wait()
        try:
            answers[n] = work(n)
        except Exception as error:
            raised.append(error)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if raised:
        raise ExceptionGroup(f"{len(raised)} of {count} threads raised", raised)
    return answers


def test_tokens_are_made_found_revoked_and_audited(place):
    access = AccessStore(place.tables("access.db"))
    made = access.create_token("scanner", ["ingest", "analyst", "ingest"], created_by="root")
    assert made.token.roles == ["analyst", "ingest"] and made.secret.startswith("gc_")
    assert access.authenticate(made.secret).id == made.token.id and access.authenticate(made.secret + "x") is None
    access.revoke(made.token.id, by="root")
    assert access.authenticate(made.secret) is None and access.token(made.token.id).revoked_at is not None
    assert [e.action for e in access.audit_entries(actor="root")] == ["token revoked", "token created"]


def test_replicas_starting_at_once_make_one_first_admin_token(place):
    made = at_once(6, lambda n: AccessStore(place.tables("access.db")).ensure_first_admin())
    assert sum(1 for m in made if m is not None) == 1, "exactly one replica prints a first admin token"
    assert len(AccessStore(place.tables("access.db")).tokens()) == 1


OPENER = """
import sys, time
from pathlib import Path
from pipeline.stores.access import SCHEMA
from pipeline.stores.database import SQLiteDatabase
print("ready", flush=True)
for line in sys.stdin:
    path, at = line.rstrip("\\n").split("\\t")
    time.sleep(max(0.0, float(at) - time.time()))
    try:
        SQLiteDatabase(Path(path), SCHEMA)
        print("opened", flush=True)
    except Exception as error:
        print(repr(error), flush=True)
"""


def test_processes_opening_a_fresh_sqlite_file_at_once_all_open_it(tmp_path):
    """Replicas (or workers) starting together on an empty data directory: none may fail with
    "database is locked" on the switch to WAL or the schema. Eight processes, each told the same
    fresh file and the same instant to open it, a few times over."""
    openers = [
        subprocess.Popen([sys.executable, "-c", OPENER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(8)
    ]
    try:
        assert [opener.stdout.readline() for opener in openers] == ["ready\n"] * 8
        for n in range(15):
            path, at = tmp_path / f"{n}" / "access.db", time.time() + 0.05
            for opener in openers:
                opener.stdin.write(f"{path}\t{at}\n")
                opener.stdin.flush()
            assert [opener.stdout.readline().strip() for opener in openers] == ["opened"] * 8, f"round {n}"
            with closing(sqlite3.connect(path)) as db:
                assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
                tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            assert {"tokens", "audit"} <= tables
    finally:
        for opener in openers:
            opener.stdin.close()
        for opener in openers:
            opener.wait(timeout=30)


def test_a_daily_limit_holds_when_reveals_come_at_once(place):
    people = People(place.tables("access.db"))
    ana = people.create_user("ana", ["analyst"], "a long enough password", "tests")
    refused = at_once(8, lambda n: People(place.tables("access.db")).take_gore_seconds(ana.id, 2.0, limit=10.0))
    assert refused.count(None) == 5, "five reveals of 2 s fit under 10 s, whoever asks first"
    assert people.today(ana.id).gore_seconds == 10.0


def test_label_decisions_and_reveal_rates(place):
    labels = LabelDecisions(place.tables("annotation.db"))
    for n in range(4):
        labels.record("ana", f"{n:064x}", f"{n}.png", "set", gore=n % 2 == 0, revealed=n == 0)
    labels.record("bo", "f" * 64, "x.png", "set", gore=False, revealed=False)
    rates = {r.annotator: (r.labels, r.revealed, r.reveal_rate) for r in labels.reveal_rates()}
    assert rates == {"ana": (4, 1, 0.25), "bo": (1, 0, 0.0)}
    assert [d.file for d in labels.decisions("ana", limit=2)] == ["3.png", "2.png"], "newest first"


def test_sql_is_written_once_and_read_by_both():
    assert _for_psycopg("SELECT * FROM t WHERE a = ? AND b LIKE '%?%'", named=False) == (
        "SELECT * FROM t WHERE a = %s AND b LIKE '%%?%%'"
    ), "a ? inside a string literal is not a placeholder"
    assert _for_psycopg("UPDATE t SET x = :x WHERE y::text = :y", named=True) == (
        "UPDATE t SET x = %(x)s WHERE y::text = %(y)s"
    ), "a cast is not a named placeholder"
    assert postgres_schema("CREATE TABLE t (id INTEGER PRIMARY KEY, n TEXT UNIQUE COLLATE NOCASE, r REAL);") == [
        "CREATE TABLE t (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, n TEXT UNIQUE, r DOUBLE PRECISION)"
    ]


def test_the_shell_commands_work_on_the_services_stores_in_either_mode(place):
    """`gore-censor tokens create` without --data-dir writes where the service reads: the shared
    database when GORE_DATABASE_URL is set (a token made elsewhere would be refused everywhere)."""
    env = {**os.environ, "GORE_DATA_DIR": str(place.data_dir)}
    if place.shared:
        env |= {"GORE_DATABASE_URL": place.shared.database_url, "GORE_OBJECT_STORE": place.shared.object_store}
    made = subprocess.run(
        [str(Path(sys.executable).with_name("gore-censor")), "tokens", "create", "--name", "ops", "--role", "analyst"],
        env=env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    secret = made.stdout.strip().splitlines()[-1]
    assert AccessStore(place.tables("access.db")).authenticate(secret).name == "ops"

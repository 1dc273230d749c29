"""store.save_papers_bulk: the same rows and counts as save_papers, FTS in step, trigger kept."""

import sqlite3

import pytest
import sqlite_utils

from harvest import store
from harvest.store import ensure_db_shape, save_papers, save_papers_bulk, start_run

from .fake_arxiv import make_paper

RUNS = [
    [make_paper(1), make_paper(2), make_paper(2, version=2), make_paper(2, version=2), make_paper(3)],
    [make_paper(1, version=2, title="Diffusion model 1, revised"), make_paper(3, journal_ref="Nature 1 (2026)"),
     make_paper(4, version=3), make_paper(4), make_paper(2, version=2)],
]


def load(save) -> tuple[sqlite_utils.Database, list]:
    db = sqlite_utils.Database(memory=True)
    ensure_db_shape(db)
    counts = []
    for papers in RUNS:
        run_id = start_run(db, "q")
        with db.atomic():
            counts.append(save(db, run_id, papers))
    return db, counts


def table(db, name):
    return sorted(tuple(row.values()) for row in db[name].rows)


def test_bulk_save_stores_what_save_papers_stores():
    daily, daily_counts = load(save_papers)
    bulk, bulk_counts = load(save_papers_bulk)
    assert bulk_counts == daily_counts
    assert [(c.fetched, c.new, c.updated, c.refreshed) for c in bulk_counts] == [(3, 3, 0, 0), (4, 1, 1, 1)]
    for name in ("papers", "versions", "paper_authors", "paper_categories"):
        assert table(bulk, name) == table(daily, name), name
    assert [(r["arxiv_id"], r["version"], r["run_id"]) for r in bulk.query("select * from versions order by 1, 2")] == [
        ("2611.00001", 1, 1), ("2611.00001", 2, 2), ("2611.00002", 1, 1), ("2611.00002", 2, 1),
        ("2611.00003", 1, 1), ("2611.00004", 1, 2), ("2611.00004", 3, 2),
    ]
    for db in (bulk, daily):
        db.execute("INSERT INTO papers_fts(papers_fts) VALUES('integrity-check')")
        assert [r["arxiv_id"] for r in db.query(
            "select p.arxiv_id from papers_fts f join papers p on p.rowid = f.rowid where papers_fts match 'revised OR model' order by 1"
        )] == ["2611.00001", "2611.00002", "2611.00003", "2611.00004"]
    trigger = "select sql from sqlite_master where name = 'papers_ai'"
    assert bulk.execute(trigger).fetchall() == daily.execute(trigger).fetchall() != []


def test_a_failed_bulk_save_leaves_no_row_and_keeps_the_trigger():
    db = sqlite_utils.Database(memory=True)
    ensure_db_shape(db)
    run_id = start_run(db, "q")
    broken = make_paper(2, title=None)  # violates NOT NULL after the trigger was dropped
    with pytest.raises(sqlite3.IntegrityError):
        save_papers_bulk(db, run_id, [make_paper(1), broken])
    assert db.execute("select count(*) from papers").fetchone() == (0,)
    assert db.execute("select count(*) from sqlite_master where name = 'papers_ai'").fetchone() == (1,)
    db.execute("INSERT INTO papers_fts(papers_fts) VALUES('integrity-check')")


def test_a_schema_1_file_made_before_backfill_windows_gets_the_table_once():
    db = sqlite_utils.Database(memory=True)
    ensure_db_shape(db)
    db["backfill_windows"].drop()
    ensure_db_shape(db)
    ensure_db_shape(db)
    assert db["backfill_windows"].pks == ["query", "window_start", "window_end"]
    assert db.execute("PRAGMA user_version").fetchone() == (store.SCHEMA_VERSION,)

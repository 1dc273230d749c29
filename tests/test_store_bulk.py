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
    # The counts too: save_papers keeps them with triggers, save_papers_bulk once per call.
    for name in (
        "papers", "versions", "paper_authors", "paper_categories", "category_counts", "month_counts",
        "primary_month_counts", "paper_tags", "tag_year_counts",
    ):
        assert table(bulk, name) == table(daily, name), name
    assert table(bulk, "month_counts") != []
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


def test_bulk_save_keeps_the_counts_equal_to_their_group_by_and_keeps_the_count_triggers():
    db = sqlite_utils.Database(memory=True)
    ensure_db_shape(db)
    triggers = "select name, sql from sqlite_master where type = 'trigger' and name like '%_counts_%' order by name"
    before = db.execute(triggers).fetchall()
    for papers in (
        [make_paper(1), make_paper(2, published=None), make_paper(3, categories=["cs.LG", "cs.AI", "cs.LG"])],
        # a new version that moves month and categories, a paper without a date gaining a version, a repeat
        [make_paper(1, version=2, published="2001-02-01T00:00:00Z", categories=["physics.comp-ph"]),
         make_paper(2, version=2, published=None), make_paper(3, categories=["cs.LG", "cs.AI", "cs.LG"]),
         {**make_paper(4), "primary_category": "cs.LG"}],
    ):
        run_id = start_run(db, "q")
        with db.atomic():
            save_papers_bulk(db, run_id, iter(papers))  # any iterable, read once
    assert db.execute("select month, papers, updated_since from month_counts order by month").fetchall() == [
        (None, 1, 1), ("2001-02", 1, 1), ("2026-11", 2, 0),
    ] == db.execute(
        "select substr(published, 1, 7) m, count(*), sum(version > 1) from papers group by m order by m"
    ).fetchall()
    assert db.execute("select category, papers from category_counts order by category").fetchall() == [
        ("cond-mat.mtrl-sci", 2), ("cs.AI", 1), ("cs.LG", 3), ("physics.comp-ph", 1),
    ] == db.execute("select category, count(*) from paper_categories group by category order by category").fetchall()
    assert db.execute("select month, primary_category, papers from primary_month_counts order by 1, 2").fetchall() == [
        (None, "cond-mat.mtrl-sci", 1), ("2001-02", "cond-mat.mtrl-sci", 1), ("2026-11", "cond-mat.mtrl-sci", 1),
        ("2026-11", "cs.LG", 1),
    ] == db.execute(
        "select substr(published, 1, 7) m, primary_category, count(*) from papers group by 1, 2 order by 1, 2"
    ).fetchall()
    assert db.execute(triggers).fetchall() == before != []

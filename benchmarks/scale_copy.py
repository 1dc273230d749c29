#!/usr/bin/env python3
"""Grow a COPY of a benchmark file k-fold: `python benchmarks/scale_copy.py FILE K [--all]`.

Each paper is copied K-1 times under the id `<arxiv_id>x<k>`, with the same title, abstract,
comment and dates, so each copy costs the same extraction, storage and search work as its
original; one SQL statement per table and copy, with the tables' triggers dropped meanwhile.

- Without --all, only `papers` is copied (for `ai4mat enrich`, which reads only `papers` and
  rewrites the enrichment tables); the FTS index and the count tables then lag behind.
- With --all, every table keyed by arxiv_id is copied (versions, authors, categories, tags,
  elements, links, embeddings...), the triggers come back, the count tables are counted again
  and the FTS index is rebuilt: a file the site serves as it would a K-fold corpus (the same
  words K times over, so search answers hold K copies of each paper).
"""

from __future__ import annotations

import sqlite3
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CHILD_TABLES = (
    "versions", "paper_authors", "paper_categories", "paper_embeddings", "paper_enrichment",
    "paper_tags", "paper_elements", "paper_formulas", "paper_links",
)


def copy_table(connection: sqlite3.Connection, table: str, factor: int) -> None:
    columns = [row[1] for row in connection.execute(f"PRAGMA table_info({table})")]
    others = ", ".join(column for column in columns if column != "arxiv_id")
    for copy in range(1, factor):
        connection.execute(
            f"INSERT INTO {table} (arxiv_id, {others}) "
            f"SELECT arxiv_id || 'x' || ?, {others} FROM {table} WHERE arxiv_id NOT LIKE '%x%'",
            (copy,),
        )


def main() -> None:
    path, factor, everything = sys.argv[1], int(sys.argv[2]), "--all" in sys.argv[3:]
    connection = sqlite3.connect(path, isolation_level=None)
    if connection.execute("SELECT count(*) FROM papers WHERE arxiv_id LIKE '%x%'").fetchone()[0]:
        sys.exit(f"{path}: holds ids with an x already (a grown copy, or old-style ids): not growing it")
    tables = ["papers"] + [
        table for table in CHILD_TABLES
        if everything and connection.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (table,)).fetchone()
    ]
    started = time.monotonic()
    connection.execute("BEGIN")
    triggers = connection.execute(
        f"SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN ({','.join('?' * len(tables))})", tables
    ).fetchall()
    for name, _ in triggers:
        connection.execute(f"DROP TRIGGER {name}")
    for table in tables:
        copy_table(connection, table, factor)
        print(f"{table}: copied ({time.monotonic() - started:.0f} s)", flush=True)
    if everything:
        from harvest import store
        import sqlite_utils

        for _, sql in triggers:
            connection.execute(sql)
        db = sqlite_utils.Database(connection)
        store._schema_v5_counts(db)
        store._schema_v6_trend_counts(db)
        print(f"counts: counted again ({time.monotonic() - started:.0f} s)", flush=True)
        connection.execute("INSERT INTO papers_fts (papers_fts) VALUES ('rebuild')")
        print(f"papers_fts: rebuilt ({time.monotonic() - started:.0f} s)", flush=True)
    connection.execute("COMMIT")
    papers = connection.execute("SELECT count(*) FROM papers").fetchone()[0]
    kept = "kept" if everything else "dropped"
    print(f"{papers:,} papers in {path} after {time.monotonic() - started:.1f} s (triggers of {', '.join(tables)}: {kept})")


if __name__ == "__main__":
    main()

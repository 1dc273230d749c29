#!/usr/bin/env python3
"""Benchmark issue 12's forgiving lookups: `python benchmarks/lookups.py --papers 100000`.

Builds benchmarks/work/lookups-N/ai4mat.db from the synthetic corpus (benchmarks/corpus.py) at
schema 5 with raw inserts (papers, paper_authors, paper_categories; no enrichment), times the
migration to schema 6, then times in SQL, with the site's functions (plugins/ai4mat_lookups.py):
  - by_author as shipped before schema 6 (exact name, `paper_authors(name)` index): the baseline;
  - by_author as shipped now, for a full name, a surname, an initial form, lower case;
  - the same lookup done by scanning every author row (lower(name) like ...), for scale;
  - paper_history with a versioned id and with a URL (arxiv_id() on the parameter).
Every 50th paper gets a "Wang" author (three spellings), so one surname is common, as on arXiv.
Prints a Markdown table of medians of `--repeats` runs (after one untimed run), with ratios
against the baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sqlite3
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import sqlite_utils  # noqa: E402
import yaml  # noqa: E402

from corpus import Corpus  # noqa: E402
from harvest import store  # noqa: E402

COMMON = ["Wei Wang", "W. Wang", "Xin Wang"]
OLD_BY_AUTHOR = """select p.arxiv_id, p.version, p.title,
  (select group_concat(value, ', ') from json_each(p.authors)) as authors, p.primary_category, p.published, p.updated
from paper_authors a join papers p on p.arxiv_id = a.arxiv_id
where a.name = trim(:name) group by p.arxiv_id order by p.updated desc, p.arxiv_id desc"""
SCAN_BY_AUTHOR = """select p.arxiv_id from paper_authors a join papers p on p.arxiv_id = a.arxiv_id
where lower(a.name) like '%' || lower(:name) || '%' group by p.arxiv_id order by p.updated desc"""


def build_v5(path: Path, count: int) -> None:
    for suffix in ("", "-journal", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    migrations, version = store.MIGRATIONS, store.SCHEMA_VERSION
    store.MIGRATIONS, store.SCHEMA_VERSION = migrations[:5], 5
    try:
        db = sqlite_utils.Database(path)
        store.ensure_db_shape(db)
    finally:
        store.MIGRATIONS, store.SCHEMA_VERSION = migrations, version
    conn = db.conn
    conn.execute("INSERT INTO runs (id, started_at, query, status) VALUES (1, 'now', 'q', 'ok')")
    papers = list(Corpus().papers(count))
    for n, paper in enumerate(papers):
        if n % 50 == 0:
            paper["authors"] = paper["authors"] + [COMMON[n // 50 % 3]]
    with conn:
        conn.executemany(
            "INSERT INTO papers (arxiv_id, version, title, summary, authors, primary_category, categories, published, "
            "updated, first_run, last_run) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, 1)",
            [(p["arxiv_id"], p["version"], p["title"], p["summary"], json.dumps(p["authors"]), p["primary_category"],
              json.dumps(p["categories"]), p["published"], p["updated"]) for p in papers],
        )
        conn.executemany(
            "INSERT INTO versions (arxiv_id, version, run_id, updated, title, summary) VALUES (?, ?, 1, ?, ?, ?)",
            [(p["arxiv_id"], p["version"], p["updated"], p["title"], "") for p in papers],
        )
        conn.executemany("INSERT INTO paper_authors VALUES (?, ?, ?)",
                         [(p["arxiv_id"], i, a) for p in papers for i, a in enumerate(p["authors"])])
        conn.executemany("INSERT INTO paper_categories VALUES (?, ?, ?, ?)",
                         [(p["arxiv_id"], i, c, p["updated"]) for p in papers for i, c in enumerate(p["categories"])])
    db.close()


def lookup_connection(path: Path) -> sqlite3.Connection:
    spec = importlib.util.spec_from_file_location("ai4mat_lookups", ROOT / "plugins" / "ai4mat_lookups.py")
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    plugin.prepare_connection(conn)
    return conn


def timed(conn, sql: str, params: dict, repeats: int) -> tuple[float, int]:
    rows = len(conn.execute(sql, params).fetchall())  # untimed first run
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        conn.execute(sql, params).fetchall()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times), rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--papers", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    path = ROOT / "benchmarks" / "work" / f"lookups-{args.papers}" / "ai4mat.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    build_v5(path, args.papers)
    print(f"built {args.papers:,} papers at schema 5 in {time.perf_counter() - began:.1f} s", file=sys.stderr)
    db = sqlite_utils.Database(path)
    began, cpu = time.perf_counter(), time.process_time()
    store.ensure_db_shape(db)
    migrated = time.perf_counter() - began, time.process_time() - cpu
    authors = db.execute("select count(*) from paper_authors").fetchone()[0]
    db.close()
    queries = yaml.safe_load((ROOT / "metadata.yml").read_text())["databases"]["ai4mat"]["queries"]
    conn = lookup_connection(path)
    rare = conn.execute("select name from paper_authors where rowid = 1000").fetchone()[0]
    surname = rare.split()[-1]
    some_id = conn.execute("select arxiv_id from versions where rowid = 5000").fetchone()[0]
    cases = [
        ("before: exact name (baseline)", OLD_BY_AUTHOR, {"name": rare}),
        ("by_author, exact name", queries["by_author"]["sql"], {"name": rare}),
        ("by_author, surname in lower case", queries["by_author"]["sql"], {"name": surname.lower()}),
        ("by_author, initial without dot, upper case", queries["by_author"]["sql"], {"name": f"{rare[0]} {surname.upper()}"}),
        ("scan of every author row (not shipped)", SCAN_BY_AUTHOR, {"name": surname}),
        ("before: exact common name (baseline 2)", OLD_BY_AUTHOR, {"name": "Wei Wang"}),
        ("by_author, common name `Wei Wang`", queries["by_author"]["sql"], {"name": "Wei Wang"}),
        ("by_author, common surname `wang`", queries["by_author"]["sql"], {"name": "wang"}),
        ("paper_history, bare id (baseline 3)", queries["paper_history"]["sql"], {"arxiv_id": some_id}),
        ("paper_history, `https://arxiv.org/abs/<id>v2`", queries["paper_history"]["sql"],
         {"arxiv_id": f"https://arxiv.org/abs/{some_id}v2"}),
    ]
    print(f"\n{args.papers:,} papers, {authors:,} author rows; schema 5 -> 6 migration: "
          f"{migrated[0]:.1f} s wall, {migrated[1]:.1f} s CPU; load average {os.getloadavg()[0]:.1f}\n")
    print("| lookup | rows | median | vs baseline |\n| --- | ---: | ---: | ---: |")
    baseline = None
    for label, sql, params in cases:
        median, rows = timed(conn, sql, params, args.repeats)
        if "baseline" in label:
            baseline = median
        print(f"| {label} | {rows} | {median:.2f} ms | {median / baseline:.1f}x |")


if __name__ == "__main__":
    main()

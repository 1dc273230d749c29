#!/usr/bin/env python3
"""Time `feed_search` at scale, on a file whose daily harvests are simulated and rolled back.

    python benchmarks/feed_search_scale.py --db /path/to/ai4mat.db [--baseline REV] [-- q ...]

The feed reads the daily harvests' versions newest first, so its cost depends on them; the 1M
benchmark files hold one backfill and no harvest. Inside one transaction that is rolled back (the
file is left as it was), this adds 20 harvest runs holding the versions of the newest 1,900 papers
and new versions of 100 older papers spread over the whole file, then times the feed's SQL for
each q (best of 3, and the first). With --baseline, the SQL of metadata.yml at that git revision is
timed in the same run, for a ratio.
"""

from __future__ import annotations

import argparse
import importlib.util
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
QUERIES = ["diffus*", "perovsk*", "model", "diffusion", "graph neural network", "dazabo", "-polymer", "-the"]


def feed_sql(metadata_text: str) -> str:
    return yaml.safe_load(metadata_text)["databases"]["ai4mat"]["queries"]["feed_search"]["sql"]


def simulate_harvests(conn: sqlite3.Connection) -> None:
    conn.execute("drop trigger if exists versions_no_update")  # restored by the rollback
    first = conn.execute("select coalesce(max(id), 0) + 1 from runs").fetchone()[0]
    for n in range(20):
        conn.execute(
            "insert into runs (id, started_at, query, status, kind) values (?, ?, 'q', 'ok', 'harvest')",
            [first + n, f"2026-12-{n + 1:02d}T00:00:00Z"],
        )
    conn.execute(
        "update versions set run_id = ? + (abs(random()) % 19) "
        "where arxiv_id in (select arxiv_id from papers order by rowid desc limit 1900)", [first],
    )
    step = max(1, conn.execute("select max(rowid) from papers").fetchone()[0] // 100)
    conn.execute(
        "insert into versions (arxiv_id, version, run_id, updated, title, summary, authors, categories) "
        "select v.arxiv_id, v.version + 1, ?, v.updated, v.title, v.summary, v.authors, v.categories "
        "from versions v join papers p on p.arxiv_id = v.arxiv_id "
        "where p.rowid % ? = 0 and v.version = (select max(version) from versions w where w.arxiv_id = v.arxiv_id) limit 100",
        [first + 19, step],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--baseline", help="a git revision whose feed_search SQL is timed too")
    parser.add_argument("queries", nargs="*", default=QUERIES)
    args = parser.parse_args(argv)
    spec = importlib.util.spec_from_file_location("ai4mat_search", ROOT / "plugins" / "ai4mat_search.py")
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    forms = {"current": feed_sql((ROOT / "metadata.yml").read_text(encoding="utf-8"))}
    if args.baseline:
        forms[args.baseline] = feed_sql(subprocess.run(
            ["git", "show", f"{args.baseline}:metadata.yml"], cwd=ROOT, check=True, capture_output=True, text=True,
        ).stdout)
    conn = sqlite3.connect(args.db, isolation_level=None)
    plugin.prepare_connection(conn)
    conn.execute("begin")
    try:
        simulate_harvests(conn)
        print("| q | " + " | ".join(f"{form}: best / first, entries" for form in forms) + " |")
        print("| --- | " + " | ".join("---:" for _ in forms) + " |")
        for q in args.queries:
            cells = []
            for sql in forms.values():
                times = []
                for _ in range(3):
                    started = time.perf_counter()
                    rows = conn.execute(sql, {"q": q}).fetchall()
                    times.append(time.perf_counter() - started)
                entries = sum(1 for row in rows if row[0].startswith("https://"))  # not the "no match" entry
                cells.append(f"{min(times) * 1000:.0f} / {times[0] * 1000:.0f} ms, {entries}")
            print(f"| `{q}` | " + " | ".join(cells) + " |")
    finally:
        conn.execute("rollback")
        conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

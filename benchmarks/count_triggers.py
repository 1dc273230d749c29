#!/usr/bin/env python3
"""What schema 3's count triggers cost a run: `python benchmarks/count_triggers.py --db FILE`.

On a copy of a large file (schema 3), stores N synthetic papers with `store.save_papers_bulk`
(a backfill's path) and `store.save_papers` (the daily run's), each inside a transaction
that is rolled back, once with the triggers that keep category_counts and month_counts and
once with them dropped (also rolled back), alternating, and prints the medians. The file is
left as it was. Also checks that the kept counts equal the GROUP BY queries they replace.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harvest import store  # noqa: E402


def synthetic(n: int, offset: int) -> list[dict]:
    return [
        {
            "arxiv_id": f"9912.{offset + i:05d}", "version": 1 + i % 3, "title": f"Paper {i}", "summary": f"Abstract {i}",
            "authors": [f"Author {i}"], "primary_category": "cond-mat.mtrl-sci",
            "categories": ["cond-mat.mtrl-sci", "cs.LG"][: 1 + i % 2], "published": f"1999-12-{1 + i % 28:02d}T00:00:00Z",
            "updated": f"2000-01-{1 + i % 28:02d}T00:00:00Z", "comment": None, "journal_ref": None, "doi": None,
            "abs_url": None, "pdf_url": None,
        }
        for i in range(n)
    ]


def timed_save(db, papers: list[dict], bulk: bool, triggers: bool) -> float:
    db.execute("BEGIN")
    try:
        if not triggers:
            for name in store._COUNT_TRIGGERS:
                db.execute(f"DROP TRIGGER {name}")
        # Not store.start_run: sqlite-utils' insert could commit what this rolls back.
        run_id = db.execute("INSERT INTO runs (started_at, query, status) VALUES ('now', 'bench', 'running')").lastrowid
        began = time.perf_counter()
        (store.save_papers_bulk if bulk else store.save_papers)(db, run_id, papers)
        return time.perf_counter() - began
    finally:
        db.conn.rollback()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--papers", type=int, nargs="+", default=[50, 10_000])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    db = store.open_db(args.db)
    db.conn.isolation_level = None  # explicit BEGIN/ROLLBACK above
    began = time.perf_counter()
    months = db.execute("select month, papers, updated_since from month_counts order by month desc").fetchall()
    months_ms = (time.perf_counter() - began) * 1000
    began = time.perf_counter()
    old = db.execute(
        "select substr(published, 1, 7) as month, count(*), sum(version > 1) from papers group by month order by month desc"
    ).fetchall()
    old_ms = (time.perf_counter() - began) * 1000
    categories = dict(db.execute("select category, papers from category_counts").fetchall())
    old_categories = dict(db.execute("select category, count(*) from paper_categories group by category").fetchall())
    print(f"month_counts == GROUP BY: {months == old} ({len(months)} months; {months_ms:.1f} ms vs {old_ms:.0f} ms)")
    print(f"category_counts == GROUP BY: {categories == old_categories} ({len(categories)} categories)")
    for n in args.papers:
        for bulk in (False, True):
            times = {True: [], False: []}
            for repeat in range(args.repeats):
                for triggers in (True, False):
                    times[triggers].append(timed_save(db, synthetic(n, repeat), bulk, triggers))
            with_t, without = statistics.median(times[True]), statistics.median(times[False])
            print(f"{'save_papers_bulk' if bulk else 'save_papers'} {n:,} papers: "
                  f"{with_t * 1000:,.0f} ms with the count triggers, {without * 1000:,.0f} ms without ({with_t / without:.2f}x)")
    (papers,) = db.execute("select count(*) from papers").fetchone()
    print(f"papers in the file afterwards: {papers:,} (unchanged: every save was rolled back)")
    db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

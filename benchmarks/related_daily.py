#!/usr/bin/env python3
"""Time the daily related-papers update: `python benchmarks/related_daily.py --db FILE [--papers 50]`.

Takes the newest papers of FILE as if a daily harvest had just stored them and runs
`harvest.related.update_related` on them inside a transaction that is rolled back afterwards,
so the file is left as it was. Prints the time and how many papers' lists name one of them.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harvest.related import update_related  # noqa: E402
from harvest.store import open_db  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--papers", type=int, default=50)
    args = parser.parse_args(argv)
    db = open_db(args.db)
    ids = [row[0] for row in db.execute("select arxiv_id from papers order by rowid desc limit ?", [args.papers])]
    began = time.perf_counter()
    db.conn.execute("BEGIN")
    done = update_related(db, ids)
    elapsed = time.perf_counter() - began
    marks = ",".join("?" * len(ids))
    (listing,) = db.execute(f"select count(distinct arxiv_id) from related where related_id in ({marks})", ids).fetchone()
    db.conn.rollback()
    db.close()
    print(f"update_related: {done} papers in {elapsed:.1f} s; {listing} papers list one of them")
    return 0


if __name__ == "__main__":
    sys.exit(main())

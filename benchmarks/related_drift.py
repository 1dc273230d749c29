#!/usr/bin/env python3
"""How far the daily related-papers updates drift from a full recompute:
`python benchmarks/related_drift.py --db FILE [--papers 50]`.

FILE: a file with every paper's WordLlama and all-MiniLM-L6-v2 vectors (e.g. the build of
benchmarks/search_quality.py). On a copy, the newest `--papers` papers are hidden (their vectors
removed) and every list is recomputed; then they come back as a day does: the harvest's
`update_related` without their MiniLM vectors, then `ai4mat embed`'s with them. Prints the
coherence of the result (benchmarks/related_coherence.py) and how many related rows differ from
a full recompute of the whole copy.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import related_coherence  # noqa: E402  (puts the repository on sys.path)
import search_quality  # noqa: E402

import sqlite_utils  # noqa: E402

from harvest.related import recompute_related, update_related  # noqa: E402


def day(db: sqlite_utils.Database, papers: int) -> None:
    """Hide the newest `papers` papers, recompute every list, then bring them back as a day does."""
    new = [a for (a,) in db.execute("SELECT arxiv_id FROM papers ORDER BY rowid DESC LIMIT ?", [papers])]
    marks = ",".join("?" * len(new))
    wordllama = db.execute(f"SELECT arxiv_id, model, embedding FROM paper_embeddings WHERE arxiv_id IN ({marks})", new).fetchall()
    minilm = db.execute(f"SELECT arxiv_id, model, embedding FROM paper_embeddings_minilm WHERE arxiv_id IN ({marks})", new).fetchall()
    with db.conn:
        db.execute(f"DELETE FROM paper_embeddings WHERE arxiv_id IN ({marks})", new)
        db.execute(f"DELETE FROM paper_embeddings_minilm WHERE arxiv_id IN ({marks})", new)
    recompute_related(db)
    with db.conn:  # the harvest: WordLlama vectors, no MiniLM vector yet
        db.conn.executemany("INSERT INTO paper_embeddings (arxiv_id, model, embedding) VALUES (?, ?, ?)", wordllama)
        update_related(db, new)
    with db.conn:  # ai4mat embed
        db.conn.executemany("INSERT INTO paper_embeddings_minilm (arxiv_id, model, embedding) VALUES (?, ?, ?)", minilm)
        update_related(db, new)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--papers", type=int, default=50)
    args = parser.parse_args(argv)
    dev = json.loads((search_quality.FIXTURES / "search_dev.json").read_text(encoding="utf-8"))["queries"]
    judged = json.loads(search_quality.JUDGED.read_text(encoding="utf-8"))["queries"]
    report, rows = {}, {}
    with tempfile.TemporaryDirectory() as work:
        for name, make in (("full", recompute_related), ("daily", lambda db: day(db, args.papers))):
            path = Path(work) / f"{name}.db"
            shutil.copy(args.db, path)
            db = sqlite_utils.Database(path)
            make(db)
            report[name] = {"dev": related_coherence.coherence(db, dev)["shipped"], "judged": related_coherence.coherence(db, judged)["shipped"]}
            rows[name] = set(db.execute("SELECT arxiv_id, related_id FROM related").fetchall())
            db.close()
    report |= {"rows differing": len(rows["full"] - rows["daily"]), "rows": len(rows["full"])}
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Related papers' topic coherence against its baselines, in one run: `python benchmarks/related_coherence.py`.

For each paper graded 2 by a `topic` query (search_dev.json, and search_judged.json), the share
of its 10 neighbours that the same query judges relevant, with the neighbours taken from:
  - the shipped `related` table (as `ai4mat relate` / `enrich` wrote it);
  - tf-idf cosine alone, WordLlama cosine alone and all-MiniLM-L6-v2 cosine alone, exact over
    every paper (the three signals the shipped score weighs, with harvest.related's own weighting);
and the ceiling: min(10, relevant papers - 1) / 10, what a perfect list could score (a narrow
topic with 4 relevant papers cannot score above 0.3).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import search_quality  # noqa: E402  (also puts the repository on sys.path)

import sqlite_utils  # noqa: E402

from harvest import related  # noqa: E402


def neighbour_lists(db: sqlite_utils.Database, arxiv_ids: list[str]) -> dict[str, dict[str, list[str]]]:
    """For each paper, its 10 neighbours by each method."""
    ids, matrix = related._all_embeddings(db)
    unit = related._unit(matrix)
    minilm_vectors = related.MiniLMVectors.read(db)
    position = {arxiv_id: i for i, arxiv_id in enumerate(ids)}
    frequency = related.DocumentFrequency(db)
    frequency.load_all()
    vectors = {
        arxiv_id: related.tfidf(related.terms(title, summary), frequency)
        for arxiv_id, title, summary in db.execute("SELECT arxiv_id, title, summary FROM papers")
    }
    lists = {}
    for arxiv_id in arxiv_ids:
        others = [other for other in ids if other != arxiv_id]
        lexical = sorted(others, key=lambda other: -related._cosine(vectors[arxiv_id], vectors[other]))
        semantic = unit @ unit[position[arxiv_id]]
        dense = [ids[j] for j in np.argsort(-semantic, kind="stable") if ids[j] != arxiv_id]
        in_context = minilm_vectors.cosines(arxiv_id, ids)
        read = [ids[j] for j in np.argsort(-np.nan_to_num(in_context, nan=-2), kind="stable") if ids[j] != arxiv_id]
        shipped = [row[0] for row in db.execute("SELECT related_id FROM related WHERE arxiv_id = ? ORDER BY rank", [arxiv_id])]
        lists[arxiv_id] = {"shipped": shipped[:10], "tf-idf": lexical[:10], "WordLlama": dense[:10], "MiniLM": read[:10]}
    return lists


def coherence(db: sqlite_utils.Database, queries: list[dict]) -> dict[str, float]:
    topics = [query for query in queries if query["kind"] == "topic"]
    targets = [(query, arxiv_id) for query in topics for arxiv_id, grade in query["relevant"].items() if grade == 2]
    lists = neighbour_lists(db, sorted({arxiv_id for _, arxiv_id in targets}))
    shares: dict[str, list[float]] = {"shipped": [], "tf-idf": [], "WordLlama": [], "MiniLM": [], "ceiling": []}
    for query, arxiv_id in targets:
        relevant = query["relevant"]
        for method, neighbours in lists[arxiv_id].items():
            shares[method].append(sum(relevant.get(n, 0) > 0 for n in neighbours) / 10)
        shares["ceiling"].append(min(10, len(relevant) - 1) / 10)
    return {"papers": len(targets), **{method: round(sum(v) / len(v), 3) for method, v in shares.items()}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, help="use this already built database instead of building one")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        path, _ = search_quality.database(args.db, work)
        db = sqlite_utils.Database(path)
        dev = json.loads((search_quality.FIXTURES / "search_dev.json").read_text(encoding="utf-8"))["queries"]
        judged = json.loads(search_quality.JUDGED.read_text(encoding="utf-8"))["queries"]
        report = {"dev": coherence(db, dev), "judged": coherence(db, judged)}
        db.close()
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

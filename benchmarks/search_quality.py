#!/usr/bin/env python3
"""Search and related-papers quality on the 1,448 real papers: `python benchmarks/search_quality.py`.

Builds a real ai4mat.db from tests/fixtures/ai4mat/papers.json through the store code (and the
enrich step, when the package has one), then asks the canned `search` query exactly as the site
does: through Datasette in process, with metadata.yml and the plugins' SQL functions. Reports:
  - nDCG@10 (gain 3 for grade 2, 1 for grade 1) and the number of empty answers, for the 20
    judged queries of search_dev.json, the held-out queries of search_heldout.json (judged by
    title rules) and those of search_judged.json (judged by reading, over pooled rankings);
  - the same for plain bm25 over any word of the query (`baseline_ndcg@10`), in the same run;
  - related-papers topic coherence: for each paper graded 2 by a `topic` query, the share of its
    10 related papers that the same query judges relevant (grade 1 or 2): on search_dev.json
    and, as `coherence_judged`, on search_judged.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import logging  # noqa: E402

import yaml  # noqa: E402
from datasette.app import Datasette  # noqa: E402

from harvest import store  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "ai4mat"
HELDOUT = Path(__file__).resolve().parent / "search_heldout.json"
JUDGED = Path(__file__).resolve().parent / "search_judged.json"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def load_papers() -> list[dict]:
    papers = json.loads((FIXTURES / "papers.json").read_text(encoding="utf-8"))["papers"]
    return [
        {
            **paper,
            "abs_url": paper.get("abs_url") or f"https://arxiv.org/abs/{paper['arxiv_id']}v{paper['version']}",
            "pdf_url": paper.get("pdf_url") or f"https://arxiv.org/pdf/{paper['arxiv_id']}v{paper['version']}",
        }
        for paper in papers
    ]


def build_db(path: Path, papers: list[dict]) -> float:
    """Store the papers as one harvest run, then relate and embed (MiniLM); returns those steps' seconds."""
    db = store.open_db(path)
    run_id = store.start_run(db, "fixtures/ai4mat/papers.json")
    with db.atomic():
        counts = store.save_papers(db, run_id, papers)
        store.finish_run(db, run_id, counts)
    started = time.perf_counter()
    from harvest import related

    related.enrich_all(db)
    store.embed_minilm(db)
    db.close()
    return time.perf_counter() - started


def database(given: Path | None, work: str) -> tuple[Path, float | None]:
    """`given`, or an ai4mat.db built in folder `work` from papers.json (with its enrich seconds)."""
    if given is not None:
        return given, None
    path = Path(work) / "ai4mat.db"
    log("building ai4mat.db from papers.json")
    return path, build_db(path, load_papers())


def heldout_judgements(papers: list[dict]) -> list[dict]:
    """The held-out queries, each judged by its rules over titles and abstracts.

    A paper is grade 2 when its title matches every `title` pattern, grade 1 when its title and
    abstract together match every `text` pattern (case-insensitive regular expressions).
    """
    queries = []
    for spec in json.loads(HELDOUT.read_text(encoding="utf-8"))["queries"]:
        relevant = {}
        for paper in papers:
            text = paper["title"] + "\n" + paper["summary"]
            if all(re.search(p, paper["title"], re.I) for p in spec["title"]):
                relevant[paper["arxiv_id"]] = 2
            elif all(re.search(p, text, re.I) for p in spec["text"]):
                relevant[paper["arxiv_id"]] = 1
        queries.append({"id": spec["id"], "kind": spec["kind"], "q": spec["q"], "relevant": relevant})
    return queries


def ndcg_at_10(ranking: list[str], relevant: dict[str, int]) -> float:
    gain = {2: 3, 1: 1}
    dcg = sum(gain.get(relevant.get(a, 0), 0) / math.log2(i + 2) for i, a in enumerate(ranking[:10]))
    ideal = sorted((gain[g] for g in relevant.values()), reverse=True)[:10]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


async def run_queries(ds: Datasette, queries: list[dict]) -> list[dict]:
    results = []
    for query in queries:
        started = time.perf_counter()
        response = await ds.client.get("/ai4mat/search.json", params={"q": query["q"], "_shape": "array"})
        elapsed = time.perf_counter() - started
        assert response.status_code == 200, response.text
        ranking = [row["arxiv_id"] for row in response.json()]
        results.append({**query, "ranking": ranking, "ndcg": ndcg_at_10(ranking, query["relevant"]), "seconds": elapsed})
    return results


async def coherence(ds: Datasette, queries: list[dict]) -> float | None:
    """Mean share of on-topic neighbours, over the grade-2 papers of the topic queries."""
    tables = (await ds.client.get("/ai4mat.json")).json().get("tables", [])
    if not any(table["name"] == "related" for table in tables):
        return None
    shares = []
    for query in queries:
        if query["kind"] != "topic":
            continue
        for arxiv_id, grade in query["relevant"].items():
            if grade != 2:
                continue
            response = await ds.client.get("/ai4mat/related.json", params={"arxiv_id": arxiv_id, "_shape": "array"})
            assert response.status_code == 200, response.text
            neighbours = [row["related_id"] for row in response.json()][:10]
            shares.append(sum(query["relevant"].get(n, 0) > 0 for n in neighbours) / 10)
    return sum(shares) / len(shares) if shares else None


def plain_bm25(path: Path, queries: list[dict]) -> float:
    """The baseline in the same run: mean nDCG@10 of FTS5's bm25 (default weights) over any word of
    each query, the issue's "plain bm25 with any word allowed" (0.707 on all 60 researcher queries)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    scores = []
    for query in queries:
        words = " OR ".join(f'"{word}"' for word in re.findall(r"\w+", query["q"].lower()))
        ranking = [row[0] for row in conn.execute(
            "SELECT p.arxiv_id FROM papers_fts JOIN papers p ON p.rowid = papers_fts.rowid "
            "WHERE papers_fts MATCH ? ORDER BY bm25(papers_fts) LIMIT 10", [words or '""'],
        )]
        scores.append(ndcg_at_10(ranking, query["relevant"]))
    conn.close()
    return sum(scores) / len(scores)


def summary(label: str, results: list[dict]) -> dict:
    by_kind: dict[str, list[float]] = {}
    for result in results:
        by_kind.setdefault(result["kind"], []).append(result["ndcg"])
    return {
        "set": label,
        "queries": len(results),
        "ndcg@10": sum(r["ndcg"] for r in results) / len(results),
        "empty": sum(not r["ranking"] for r in results),
        "by_kind": {kind: sum(v) / len(v) for kind, v in sorted(by_kind.items())},
        "slowest_ms": max(r["seconds"] for r in results) * 1000,
    }


async def measure(path: Path, verbose: bool) -> dict:
    papers = load_papers()
    metadata = yaml.safe_load((ROOT / "metadata.yml").read_text(encoding="utf-8"))
    ds = Datasette([], immutables=[str(path)], metadata=metadata, plugins_dir=str(ROOT / "plugins"))
    dev = json.loads((FIXTURES / "search_dev.json").read_text(encoding="utf-8"))["queries"]
    report = {}
    judged = json.loads(JUDGED.read_text(encoding="utf-8"))["queries"]
    for label, queries in (("dev", dev), ("heldout", heldout_judgements(papers)), ("judged", judged)):
        results = await run_queries(ds, queries)
        report[label] = summary(label, results)
        report[label]["baseline_ndcg@10"] = plain_bm25(path, queries)
        if verbose:
            for r in results:
                print(f"  {label} {r['id']} {r['ndcg']:.3f} {len(r['ranking']):3d} rel={len(r['relevant']):3d}  {r['q']}")
    report["coherence"] = await coherence(ds, dev)
    report["coherence_judged"] = await coherence(ds, judged)
    return report


def main(argv: list[str] | None = None) -> int:
    logging.getLogger("httpx").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, help="use this already built database instead of building one")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each query's score")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        path, enrich_seconds = database(args.db, work)
        report = asyncio.run(measure(path, args.verbose))
    report["enrich_seconds"] = enrich_seconds
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

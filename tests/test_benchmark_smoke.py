"""A tiny run of benchmarks/run.py end to end: corpus, both load paths, a daily run, a real Datasette."""

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_benchmark_script_runs_on_1000_papers(tmp_path):
    result = subprocess.run(
        [sys.executable, "benchmarks/run.py", "--papers", "1000", "--repeats", "1", "--ingest-papers", "500",
         "--search-repeats", "1", "--throughput-requests", "20", "--concurrency", "2", "--work", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    headings = [line for line in result.stdout.splitlines() if line.startswith("#")]
    assert [h.split(" (")[0].split(" at ")[0] for h in headings[1:]] == [
        "### 1. Ingest", "### 2. Daily run", "### 3. Latency over HTTP through Datasette",
        "### 4. README section and file size", "### 5. Throughput on loopback",
    ]
    results = json.loads((tmp_path / "1000" / "results.json").read_text())
    # The corpus is deterministic: the same seed gives the same word counts everywhere.
    assert results["http"]["matches"]["model"] == 841
    assert results["http"]["matches"]["graph neural network"] == 45
    assert set(results["http"]["latency"]) == {
        "search (canned query)", "SQL: bm25 over all matches", "SQL: newest first",
        "SQL: newest first, page of 50 with snippets", "table search (papers?_search=)",
    }
    assert results["ingest"]["rates"]["bulk"] > 0 and results["http"]["throughput"]["new_today"] > 0
    conn = sqlite3.connect(tmp_path / "1000" / "ai4mat.db")
    try:
        # 1,000 built, then two daily runs of 40 new papers each; the FTS index is in step.
        assert conn.execute("select count(*) from papers").fetchone() == (1080,)
        assert conn.execute("select kind, status, new from runs order by id").fetchall() == [
            ("backfill", "ok", 1000), ("harvest", "ok", 40), ("harvest", "ok", 40),
        ]
        conn.execute("INSERT INTO papers_fts(papers_fts) VALUES('integrity-check')")
    finally:
        conn.close()


def test_site_benchmark_times_every_page_a_user_reaches(tmp_path):
    from .site_data import build_site_db

    db = tmp_path / "ai4mat.db"
    build_site_db(db)
    out = tmp_path / "site.json"
    result = subprocess.run(
        [sys.executable, "benchmarks/site.py", "--db", str(db), "--repeats", "1", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(out.read_text())
    labels = [r["label"] for r in summary["results"]]
    assert labels[:7] == [
        # The freshness line's link to the run log comes first (templates/_ai4mat_freshness.html).
        "home link /", "home link /ai4mat/runs", "home link /ai4mat/new_today", "home link /ai4mat/new_this_week",
        "home link /ai4mat/search", "home link /ai4mat/feed.atom", "home link /ai4mat/papers",
    ]
    assert "search box: papers search box: model" in labels
    # Every canned query, and each value of both facets of the papers page.
    assert sorted(label.split()[1] for label in labels if label.startswith("canned")) == sorted(
        ["search", "search", "search", "new_today", "new_this_week", "by_category", "by_category", "by_category",
         "papers_per_month", "runs", "feed", "by_tag", "by_elements", "with_code", "health", "by_author", "paper_history", "related",
         "feed_search", "feed_search", "feed_category", "feed_tag", "feed_author"]
    )
    row_page = next(r for r in summary["results"] if r["label"] == "row page of a paper")
    assert (row_page["status"], row_page["final"].startswith("/ai4mat/papers/")) == (200, True), row_page["final"]
    halfway = next(r for r in summary["results"] if r["label"] == "canned by_category cond-mat.mtrl-sci halfway")
    assert halfway["final"] == "/ai4mat/by_category?category=cond-mat.mtrl-sci&before=2026-11-20T08%3A00%3A00Z%2C2611.00001"
    # A click on a category opens by_category (metadata.yml), not the papers table filtered by _through.
    assert [r["final"] for r in summary["results"] if r["label"].startswith("facet click paper_categories")] == [
        f"/ai4mat/by_category?category={category}" for category in ("cond-mat.mtrl-sci", "cs.LG", "physics.comp-ph")
    ]
    assert [label for label in labels if label.startswith("facet click")] == [
        "facet click paper_categories.category=cond-mat.mtrl-sci", "facet click paper_categories.category=cs.LG",
        "facet click paper_categories.category=physics.comp-ph",
        # The site's papers are tagged by the real enrichment; they mention no element and no link.
        *(f"facet click paper_tags.tag={tag}" for tag in (
            "diffusion model", "generative design", "alloy", "catalyst", "crystal structure prediction",
            "graph neural network", "perovskite", "transformer",
        )),
        "facet click primary_category=cond-mat.mtrl-sci", "facet click primary_category=cs.LG",
    ]
    assert (summary["not_200"], summary["facets_timed_out"]) == ([], [])
    papers_search = next(r for r in summary["results"] if r["label"] == "search box: papers search box: model")
    assert papers_search["final"] == "/ai4mat/search?q=model"


def test_feed_search_scale_times_the_feed_and_leaves_the_file_as_it_was(tmp_path):
    from .site_data import build_site_db

    db = tmp_path / "ai4mat.db"
    build_site_db(db)
    before = db.read_bytes()
    result = subprocess.run(
        [sys.executable, "benchmarks/feed_search_scale.py", "--db", str(db), "--", "diffus*", "-polymer"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0] == "| q | current: best / first, entries |"
    assert [line.split(" |")[0] for line in lines[2:]] == ["| `diffus*`", "| `-polymer`"]
    assert db.read_bytes() == before  # the simulated harvests were rolled back

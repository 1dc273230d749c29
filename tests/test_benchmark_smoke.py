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

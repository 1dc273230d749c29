#!/usr/bin/env python3
"""Benchmark the dataset at arXiv scale: `python benchmarks/run.py --papers N` (or `make bench`).

Builds a synthetic corpus of N papers (benchmarks/corpus.py) into benchmarks/work/N/ai4mat.db
through the project's bulk store path, then reports, as medians of repeated runs:
  1. ingest rate of the store code against raw sqlite3 executemany + FTS5 rebuild (same run);
  2. a daily run's store cost with N papers in the file;
  3. search and new_today latency over HTTP through a real Datasette (metadata.yml, plugins/);
  4. README section rendering time, and bytes per paper with and without the FTS index;
  5. Datasette throughput on loopback with a bounded Python load generator.
Prints a Markdown report and writes the numbers to benchmarks/work/N/results.json.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import os
import platform
import random
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlite_utils  # noqa: E402

from corpus import Corpus, with_history  # noqa: E402
from harvest import readme, store  # noqa: E402
from harvest.parse import author_key, author_surname_key  # noqa: E402

WINDOW = 10_000  # papers per transaction in the bulk path, like one backfill window


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))]


def records_for(papers: list[dict]) -> list[dict]:
    return [record for paper in papers for record in with_history(paper)]


def windows(papers: list[dict], size: int):
    """Chunks of `size` papers, each with every version of its papers (a backfill window)."""
    for start in range(0, len(papers), size):
        yield records_for(papers[start : start + size])


def fresh_path(path: Path) -> Path:
    for suffix in ("", "-journal", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return path


# ---------------------------------------------------------------- 1. ingest


def load_baseline(path: Path, papers: list[dict]) -> tuple[float, float]:
    """The floor: raw executemany into the same tables (no FTS triggers), then an FTS5 rebuild."""
    db = sqlite_utils.Database(fresh_path(path))
    store.ensure_db_shape(db)
    for trigger in ("papers_ai", "papers_ad", "papers_au"):
        db.execute(f"DROP TRIGGER {trigger}")
    db.execute("INSERT INTO runs (id, started_at, query, status) VALUES (1, 'now', 'q', 'ok')")
    db.conn.commit()
    conn = db.conn
    records = records_for(papers)
    began, cpu = time.perf_counter(), time.process_time()
    latest = {record["arxiv_id"]: record for record in records}
    with conn:
        conn.executemany(
            "INSERT INTO papers (arxiv_id, version, title, summary, authors, primary_category, categories, published, "
            "updated, comment, journal_ref, doi, abs_url, pdf_url, first_run, last_run) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, 1)",
            [(p["arxiv_id"], p["version"], p["title"], p["summary"], json.dumps(p["authors"], ensure_ascii=False),
              p["primary_category"], json.dumps(p["categories"], ensure_ascii=False), p["published"], p["updated"],
              p["comment"], p["journal_ref"], p["doi"], p["abs_url"], p["pdf_url"]) for p in latest.values()],
        )
        conn.executemany(
            "INSERT INTO versions (arxiv_id, version, run_id, updated, title, summary, authors, categories, comment, "
            "journal_ref, doi) VALUES (?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(p["arxiv_id"], p["version"], p["updated"], p["title"], p["summary"], json.dumps(p["authors"], ensure_ascii=False),
              json.dumps(p["categories"], ensure_ascii=False), p["comment"], p["journal_ref"], p["doi"]) for p in records],
        )
        conn.executemany(
            "INSERT INTO paper_authors (arxiv_id, position, name, name_key, surname_key) VALUES (?, ?, ?, ?, ?)",
            [(p["arxiv_id"], i, name, author_key(name), author_surname_key(name))
             for p in latest.values() for i, name in enumerate(p["authors"])],
        )
        conn.executemany(
            "INSERT INTO paper_categories VALUES (?, ?, ?, ?)",
            [(p["arxiv_id"], i, c, p["updated"]) for p in latest.values() for i, c in enumerate(p["categories"])],
        )
        conn.execute("INSERT INTO papers_fts(papers_fts) VALUES('rebuild')")
    elapsed = time.perf_counter() - began, time.process_time() - cpu
    db.close()
    return elapsed


def load_bulk(path: Path, papers: list[dict], window: int = WINDOW) -> tuple[float, float]:
    """The project's backfill path: store.save_papers_bulk, one transaction per window."""
    db = store.open_db(fresh_path(path))
    run_id = store.start_run(db, "benchmark", kind="backfill")
    chunks = list(windows(papers, window))
    began, cpu = time.perf_counter(), time.process_time()
    for chunk in chunks:
        with db.atomic():
            store.save_papers_bulk(db, run_id, chunk)
    elapsed = time.perf_counter() - began, time.process_time() - cpu
    db.close()
    return elapsed


def load_daily(path: Path, papers: list[dict]) -> tuple[float, float]:
    """The daily path: store.save_papers (per-row FTS triggers), one transaction, as run_harvest does."""
    db = store.open_db(fresh_path(path))
    run_id = store.start_run(db, "benchmark")
    records = records_for(papers)
    began, cpu = time.perf_counter(), time.process_time()
    with db.atomic():
        store.save_papers(db, run_id, records)
    elapsed = time.perf_counter() - began, time.process_time() - cpu
    db.close()
    return elapsed


def bench_ingest(work: Path, corpus: Corpus, count: int, repeats: int) -> dict:
    """Papers/s of each path, wall clock and per CPU second (the second is steadier on a shared machine)."""
    papers = list(corpus.papers(count))
    wall: dict[str, list[float]] = {"baseline": [], "bulk": [], "daily": []}
    cpu: dict[str, list[float]] = {"baseline": [], "bulk": [], "daily": []}
    for attempt in range(repeats):
        for name, load in (("baseline", load_baseline), ("bulk", load_bulk), ("daily", load_daily)):
            wall_seconds, cpu_seconds = load(work / f"ingest-{name}.db", papers)
            wall[name].append(count / wall_seconds)
            cpu[name].append(count / cpu_seconds)
            log(f"ingest {name} #{attempt + 1}: {count / wall_seconds:,.0f} papers/s ({count / cpu_seconds:,.0f} per CPU second)")
    for name in wall:
        fresh_path(work / f"ingest-{name}.db").unlink(missing_ok=True)
    rates = {name: statistics.median(values) for name, values in wall.items()}
    cpu_rates = {name: statistics.median(values) for name, values in cpu.items()}
    return {
        "papers": count, "repeats": repeats, "window": WINDOW,
        "rates": rates, "cpu_rates": cpu_rates, "all_rates": wall, "all_cpu_rates": cpu,
        "bulk_ratio": rates["bulk"] / rates["baseline"], "daily_ratio": rates["daily"] / rates["baseline"],
        "bulk_cpu_ratio": cpu_rates["bulk"] / cpu_rates["baseline"], "daily_cpu_ratio": cpu_rates["daily"] / cpu_rates["baseline"],
    }


# ---------------------------------------------------------------- building the N-paper file


def build(path: Path, corpus: Corpus, count: int) -> dict:
    db = store.open_db(fresh_path(path))
    run_id = store.start_run(db, "benchmark corpus", kind="backfill")
    stored = 0
    store_seconds = 0.0
    began = time.perf_counter()
    generator = corpus.papers(count)
    while stored < count:
        papers = [paper for _, paper in zip(range(WINDOW), generator)]
        chunk = records_for(papers)
        t = time.perf_counter()
        with db.atomic():
            store.save_papers_bulk(db, run_id, chunk)
        store_seconds += time.perf_counter() - t
        stored += len(papers)
        if stored % 100_000 == 0 or stored == count:
            log(f"build: {stored:,} papers ({stored / store_seconds:,.0f} papers/s in the store)")
    store.finish_run(db, run_id, store.RunCounts(fetched=count, new=count))
    db.close()
    return {"papers": count, "store_seconds": store_seconds, "wall_seconds": time.perf_counter() - began,
            "store_rate": count / store_seconds}


# ---------------------------------------------------------------- 2. daily run


def _paper_from_row(row: dict) -> dict:
    paper = dict(row)
    paper["authors"] = json.loads(paper["authors"])
    paper["categories"] = json.loads(paper["categories"])
    return paper


def bench_incremental(path: Path, corpus: Corpus, repeats: int, count: int) -> dict:
    """Each repeat is one real daily run: 40 new papers and 10 new versions of stored ones,
    alone, then inside a scan of 2,000 results (the rest already stored, unchanged)."""
    rng = random.Random(7)
    db = store.open_db(path)
    (max_rowid,) = db.execute("select max(rowid) from papers").fetchone()
    new_papers = iter(corpus.papers(50 * 2 * repeats, start=datetime.datetime(2026, 12, 1), end=datetime.datetime(2026, 12, 2)))
    (already,) = db.execute("select count(*) from papers where arxiv_id like '2612.%'").fetchone()  # --reuse
    serial = iter(range(already + 1, 10**6))
    timings: dict[str, list[float]] = {"50": [], "2000": []}
    served_counts = {}
    for attempt in range(repeats):
        for label in ("2000", "50"):  # the last run of all is the 50-paper one: new_today shows it
            fresh = []
            for paper in (next(new_papers) for _ in range(40)):
                arxiv_id = f"2612.{next(serial):05d}"
                fresh.append({**paper, "arxiv_id": arxiv_id, "version": 1})
            picks = rng.sample(range(1, max_rowid + 1), min(max_rowid, 10 if label == "50" else 1960))
            known = [_paper_from_row(row) for row in db.execute_returning_dicts(
                f"select * from papers where rowid in ({','.join('?' * len(picks))})", picks)]
            updated = [{**paper, "version": paper["version"] + 1, "updated": "2026-12-01T10:00:00Z"} for paper in known[:10]]
            served = fresh + updated + known[10:]
            began = time.perf_counter()
            run_id = store.start_run(db, "benchmark daily")
            with db.atomic():
                counts = store.save_papers(db, run_id, served)
                store.finish_run(db, run_id, counts)
            timings[label].append(time.perf_counter() - began)
            served_counts[label] = len(served)
            log(f"daily run of {len(served)} served ({counts.new} new, {counts.updated} updated): {timings[label][-1] * 1000:.0f} ms")
    db.close()
    return {"papers_in_db": count, "repeats": repeats,
            "seconds_50": statistics.median(timings["50"]), "seconds_2000": statistics.median(timings["2000"]),
            "served_2000": served_counts["2000"],
            "all": timings}


# ---------------------------------------------------------------- 3 and 5. Datasette


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Datasette:
    """A real `datasette serve` of the file, with the project's metadata.yml and plugins."""

    def __init__(self, path: Path):
        self.port = free_port()
        command = [
            str(Path(sys.executable).parent / "datasette"), "serve", "-i", str(path), "--port", str(self.port),
            "--setting", "sql_time_limit_ms", "30000", "--setting", "num_sql_threads", "3",
        ]
        if (ROOT / "metadata.yml").exists():
            command += ["--metadata", str(ROOT / "metadata.yml")]
        if (ROOT / "plugins").is_dir():
            command += ["--plugins-dir", str(ROOT / "plugins")]
        self.command = command
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while True:
            try:
                status, _ = self.get("/-/versions.json")
                if status == 200:
                    break
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"datasette did not start: {self.process.stderr.read().decode()[-2000:]}")
            time.sleep(0.1)

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)

    def get(self, path: str, conn: http.client.HTTPConnection | None = None) -> tuple[int, bytes]:
        own = conn is None
        conn = conn or self.connection()
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            if own:
                conn.close()

    def timed(self, path: str, repeats: int) -> list[float]:
        conn = self.connection()
        status, body = self.get(path, conn)  # warm: first use of a statement or page
        if status != 200:
            raise RuntimeError(f"GET {path}: HTTP {status}: {body[:300]!r}")
        times = []
        for _ in range(repeats):
            began = time.perf_counter()
            status, body = self.get(path, conn)
            times.append(time.perf_counter() - began)
            if status != 200:
                raise RuntimeError(f"GET {path}: HTTP {status}: {body[:300]!r}")
        conn.close()
        return times

    def throughput(self, path: str, requests: int, concurrency: int) -> float:
        """Requests per second for exactly `requests` GETs from `concurrency` keep-alive clients."""
        counter = iter(range(requests))
        lock = threading.Lock()
        failures = []

        def worker():
            conn = self.connection()
            while True:
                with lock:
                    if next(counter, None) is None:
                        break
                status, _ = self.get(path, conn)
                if status != 200:
                    failures.append(status)
            conn.close()

        threads = [threading.Thread(target=worker) for _ in range(concurrency)]
        began = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - began
        if failures:
            raise RuntimeError(f"GET {path}: {len(failures)} failed requests, e.g. HTTP {failures[0]}")
        return requests / elapsed

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def search_queries(corpus: Corpus) -> list[tuple[str, str]]:
    """10 queries from common to rare: (label, text)."""
    vocab = corpus.vocab
    return [
        ("common word", "model"),
        ("two common words", "neural network"),
        ("three words", "graph neural network"),
        ("domain phrase", "materials discovery"),
        ("mid-frequency word", "diffusion"),
        ("three mid words", "equivariant message passing"),
        ("prefix", "perovsk*"),
        ("uncommon word (rank 2,000)", vocab[1999]),
        ("rare word (rank 20,000)", vocab[19999]),
        ("very rare word (rank 150,000)", vocab[149_999]),
    ]


SQL_ORDERS = {
    "bm25 over all matches": "select rowid from papers_fts where papers_fts match fts_query(:q) order by rank limit 50",
    "newest first": "select rowid from papers_fts where papers_fts match fts_query(:q) order by rowid desc limit 50",
    # A whole results page, newest first: the columns of the canned search, snippets for the 50 shown only.
    "newest first, page of 50 with snippets": """with hits as (
  select rowid, snippet(papers_fts, 1, '**', '**', '…', 24) as snippet
  from papers_fts where papers_fts match fts_query(:q) order by rowid desc limit 50
)
select p.arxiv_id, p.version, p.title, hits.snippet,
  (select group_concat(value, ', ') from json_each(p.authors)) as authors,
  p.primary_category, p.published, p.updated, 'https://arxiv.org/abs/' || p.arxiv_id as link
from hits join papers p on p.rowid = hits.rowid
order by hits.rowid desc""",
}


def bench_http(path: Path, corpus: Corpus, repeats: int, throughput_requests: int, concurrency: int) -> dict:
    queries = search_queries(corpus)
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    sys.path.insert(0, str(ROOT / "plugins"))
    from ai4mat_search import fts_query

    matches = {text: conn.execute("select count(*) from papers_fts where papers_fts match ?", [fts_query(text)]).fetchone()[0]
               for _, text in queries}
    conn.close()
    server = Datasette(path)
    try:
        has_search = server.get("/ai4mat/search.json?q=model&_shape=array")[0] == 200
        results: dict = {"matches": matches, "queries": queries, "canned_search": has_search, "latency": {}}
        forms = {}
        if has_search:
            forms["search (canned query)"] = lambda q: f"/ai4mat/search.json?_shape=array&q={urllib.parse.quote(q)}"
        for name, sql in SQL_ORDERS.items():
            forms[f"SQL: {name}"] = lambda q, sql=sql: "/ai4mat.json?_shape=array&" + urllib.parse.urlencode({"sql": sql, "q": q})
        forms["table search (papers?_search=)"] = lambda q: "/ai4mat/papers.json?_shape=array&_size=50&" + urllib.parse.urlencode({"_search": q})
        for form, url in forms.items():
            per_query = {}
            every = []
            for label, text in queries:
                times = server.timed(url(text), repeats)
                per_query[text] = {"p50": percentile(times, 0.5), "p95": percentile(times, 0.95)}
                every += times
            results["latency"][form] = {"p50": percentile(every, 0.5), "p95": percentile(every, 0.95), "per_query": per_query}
            log(f"{form}: p50 {percentile(every, 0.5) * 1000:.1f} ms, p95 {percentile(every, 0.95) * 1000:.1f} ms")
        new_today = server.timed("/ai4mat/new_today.json?_shape=array", repeats * 5)
        results["new_today"] = {"p50": percentile(new_today, 0.5), "p95": percentile(new_today, 0.95)}
        log(f"new_today: p50 {results['new_today']['p50'] * 1000:.1f} ms, p95 {results['new_today']['p95'] * 1000:.1f} ms")
        search_path = (forms.get("search (canned query)") or forms["SQL: newest first"])("diffusion")
        results["throughput"] = {
            "requests": throughput_requests, "concurrency": concurrency,
            "new_today": server.throughput("/ai4mat/new_today.json?_shape=array", throughput_requests, concurrency),
            "search": server.throughput(search_path, throughput_requests, concurrency),
            "search_path": search_path,
        }
        log(f"throughput: {results['throughput']}")
        results["command"] = " ".join(server.command)
    finally:
        server.stop()
    return results


# ---------------------------------------------------------------- 4. README and size


def bench_readme_and_size(path: Path, count: int, repeats: int) -> dict:
    db = store.open_db(path, create=False, writable=False)
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        section = readme.render_section(db, zone=ZoneInfo("Asia/Singapore"), label="SGT", max_papers=100)
        times.append(time.perf_counter() - began)
    fts_bytes = db.execute("select coalesce(sum(pgsize), 0) from dbstat where name like 'papers_fts%'").fetchone()[0]
    db.close()
    size = path.stat().st_size
    return {
        "readme_seconds": statistics.median(times), "readme_chars": len(section),
        "file_bytes": size, "fts_bytes": fts_bytes,
        "bytes_per_paper": size / count, "bytes_per_paper_without_fts": (size - fts_bytes) / count,
    }


# ---------------------------------------------------------------- report


def machine() -> dict:
    memory = next((line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")), "0")
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), platform.processor())
    return {"cores": os.cpu_count(), "memory_gib": round(int(memory) / 2**20, 1), "cpu": cpu,
            "python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def report(results: dict) -> str:
    ms = lambda seconds: f"{seconds * 1000:.1f} ms"  # noqa: E731
    m = results["machine"]
    out = [f"## {results['papers']:,} papers — {m['date']}", "",
           f"Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB RAM; Python {m['python']}, SQLite {m['sqlite']}.",
           f"Command: `{results['command']}`", ""]
    if "ingest" in results:
        ingest = results["ingest"]
        out += [f"### 1. Ingest ({ingest['papers']:,} papers with their versions, median of {ingest['repeats']})", "",
                "| path | papers/s | vs baseline | papers per CPU second | vs baseline |", "| --- | ---: | ---: | ---: | ---: |",
                f"| baseline: raw executemany + FTS5 rebuild | {ingest['rates']['baseline']:,.0f} | 1.00 | {ingest['cpu_rates']['baseline']:,.0f} | 1.00 |",
                f"| store.save_papers_bulk (backfill), windows of {ingest['window']:,} | {ingest['rates']['bulk']:,.0f} | {ingest['bulk_ratio']:.2f} "
                f"| {ingest['cpu_rates']['bulk']:,.0f} | {ingest['bulk_cpu_ratio']:.2f} |",
                f"| store.save_papers (daily path, FTS triggers) | {ingest['rates']['daily']:,.0f} | {ingest['daily_ratio']:.2f} "
                f"| {ingest['cpu_rates']['daily']:,.0f} | {ingest['daily_cpu_ratio']:.2f} |", ""]
    if "build" in results:
        b = results["build"]
        out += [f"Building the {b['papers']:,}-paper file through save_papers_bulk: {b['store_rate']:,.0f} papers/s "
                f"in the store ({b['store_seconds']:.0f} s; {b['wall_seconds']:.0f} s with corpus generation).", ""]
    inc = results["incremental"]
    out += [f"### 2. Daily run at {inc['papers_in_db']:,} papers (median of {inc['repeats']})", "",
            f"- 50 papers through save_papers (40 new, 10 new versions), run bookkeeping included: {ms(inc['seconds_50'])}",
            f"- a scan of {inc['served_2000']:,} results of which 50 new/updated: {ms(inc['seconds_2000'])}", ""]
    http_results = results["http"]
    out += ["### 3. Latency over HTTP through Datasette (10 queries; p50 / p95)", "",
            "| form | p50 | p95 |", "| --- | ---: | ---: |"]
    for form, numbers in http_results["latency"].items():
        out.append(f"| {form} | {ms(numbers['p50'])} | {ms(numbers['p95'])} |")
    out.append(f"| new_today (50 papers) | {ms(http_results['new_today']['p50'])} | {ms(http_results['new_today']['p95'])} |")
    out += ["", "Per query (p95), with the number of matching papers:", "",
            "| query | matches | " + " | ".join(http_results["latency"]) + " |",
            "| --- | ---: | " + " | ".join("---:" for _ in http_results["latency"]) + " |"]
    for label, text in http_results["queries"]:
        cells = " | ".join(ms(numbers["per_query"][text]["p95"]) for numbers in http_results["latency"].values())
        out.append(f"| {label}: `{text}` | {http_results['matches'][text]:,} | {cells} |")
    t = http_results["throughput"]
    size = results["size"]
    out += ["", "### 4. README section and file size", "",
            f"- render_section (100 papers listed): {ms(size['readme_seconds'])}",
            f"- file: {size['file_bytes'] / 2**20:,.0f} MiB; {size['bytes_per_paper']:,.0f} bytes per paper with FTS, "
            f"{size['bytes_per_paper_without_fts']:,.0f} without (FTS index {size['fts_bytes'] / 2**20:,.0f} MiB)", "",
            f"### 5. Throughput on loopback ({t['requests']} requests, {t['concurrency']} keep-alive clients)", "",
            f"- new_today.json: {t['new_today']:,.0f} requests/s",
            f"- search `{t['search_path']}`: {t['search']:,.0f} requests/s", ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--papers", type=int, default=100_000, help="papers in the benchmark database (default 100,000)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of each timed step; medians are reported")
    parser.add_argument("--ingest-papers", type=int, default=20_000, help="papers per ingest comparison (at most --papers)")
    parser.add_argument("--search-repeats", type=int, default=10, help="timed requests per query and form")
    parser.add_argument("--throughput-requests", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work")
    parser.add_argument("--reuse", action="store_true", help="reuse an existing benchmark database of this size")
    parser.add_argument("--skip-ingest", action="store_true", help="leave out the ingest comparison (step 1)")
    args = parser.parse_args(argv)

    work = args.work / str(args.papers)
    work.mkdir(parents=True, exist_ok=True)
    path = work / "ai4mat.db"  # the name metadata.yml's `databases.ai4mat` expects
    corpus = Corpus()
    results: dict = {"papers": args.papers, "machine": machine(),
                     "command": "python benchmarks/run.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    if not args.skip_ingest:
        results["ingest"] = bench_ingest(work, corpus, min(args.papers, args.ingest_papers), args.repeats)
    if not (args.reuse and path.exists()):
        results["build"] = build(path, corpus, args.papers)
    results["incremental"] = bench_incremental(path, corpus, args.repeats, args.papers)
    results["size"] = bench_readme_and_size(path, args.papers, args.repeats)
    results["http"] = bench_http(path, corpus, args.search_repeats, args.throughput_requests, args.concurrency)
    (work / "results.json").write_text(json.dumps(results, indent=2))
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Live against immutable serving, and huge-value queries: `python benchmarks/live.py --db FILE`.

FILE is a benchmark database named ai4mat.db (`benchmarks/run.py` builds one); it is served
twice at once from the same file by real `ai4mat serve` processes, one live (WAL, mutable, one
read snapshot per request) and one `--immutable`, and the two are timed in alternating rounds so
both see the same machine load. Measured over HTTP, HTML pages (counts, facets and all) as well
as JSON:
  1. new_today and search (the canned query, 10 queries from common to rare): p50 and p95 per
     mode and the live/immutable ratio of p95;
  2. the same live pages while a harvest-sized writer commits into the file (one commit a second);
  3. 4 huge-value queries at once (printf %.*c 1e9, zeroblob 1e8, randomblob 1e9): their statuses
     and times, the server's peak RSS, and new_today's latency meanwhile;
  4. table views that scan (`summary__glob=*x*`, `_search=m*`): status and time against the
     3 s time limit;
  5. a real write of a daily run (3,000 new papers through harvest.store, one transaction, under
     the writer lock) while clients read both servers: statuses, and the version counts seen
     against the counts before and after; then how long the first download of the new state takes.
The file is switched to WAL (live serving does that) and written by step 2 (rows of `papers`
rewritten with their own values) and step 5 (3,000 papers added for good): never point it at a
file you must not change.
"""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))

from corpus import Corpus  # noqa: E402
from harvest import store  # noqa: E402
from run import _paper_from_row, free_port, log, percentile, search_queries  # noqa: E402


class Server:
    """A real `ai4mat serve` process (live unless `--immutable` is passed)."""

    def __init__(self, db: Path, *options: str):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.command = [sys.executable, "-m", "harvest", "serve", "--db", str(db), "--port", str(self.port), *options]
        # Output to a file: a pipe nobody reads fills with uvicorn's log and stalls the server.
        self.output = tempfile.TemporaryFile("w+")
        self.process = subprocess.Popen(self.command, cwd=ROOT, stdout=self.output, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 600
        while True:
            try:
                if self.get("/-/versions.json")[0] == 200:
                    break
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.command} did not start")
            time.sleep(0.2)
        self.output.seek(0)
        self.banner = self.output.readline().strip()

    def get(self, path: str, timeout: float = 120) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.base + path, timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def timed(self, path: str) -> float:
        began = time.perf_counter()
        status, body = self.get(path)
        elapsed = time.perf_counter() - began
        if status != 200:
            raise RuntimeError(f"GET {path}: HTTP {status}: {body[:300]!r}")
        return elapsed

    def rss(self) -> tuple[int, int]:
        """(current, peak) resident memory of the server process, bytes."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return tuple(int(re.search(rf"{key}:\s+(\d+) kB", status).group(1)) * 1024 for key in ("VmRSS", "VmHWM"))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)


def pages(corpus: Corpus) -> dict[str, list[str]]:
    queries = [text for _, text in search_queries(corpus)]
    return {
        "new_today (JSON)": ["/ai4mat/new_today.json?_shape=array"],
        "new_today (HTML)": ["/ai4mat/new_today"],
        "search (JSON)": [f"/ai4mat/search.json?_shape=array&q={urllib.parse.quote(q)}" for q in queries],
        "search (HTML)": [f"/ai4mat/search?q={urllib.parse.quote(q)}" for q in queries],
    }


def summary(times: list[float]) -> dict:
    return {"n": len(times), "p50": percentile(times, 0.5), "p95": percentile(times, 0.95), "max": max(times)}


def compare(live: Server, immutable: Server, corpus: Corpus, rounds: int) -> dict:
    """Alternating rounds: each round requests every page once from each server (order swapped per round)."""
    results = {}
    for name, paths in pages(corpus).items():
        times = {"live": [], "immutable": []}
        for path in paths:  # warm both
            live.timed(path)
            immutable.timed(path)
        for round_ in range(rounds):
            order = [("live", live), ("immutable", immutable)]
            if round_ % 2:
                order.reverse()
            for path in paths:
                for mode, server in order:
                    times[mode].append(server.timed(path))
        entry = {mode: summary(values) for mode, values in times.items()}
        entry["p95 ratio live/immutable"] = entry["live"]["p95"] / entry["immutable"]["p95"]
        results[name] = entry
        log(f"{name}: live p95 {entry['live']['p95'] * 1000:.1f} ms, immutable p95 {entry['immutable']['p95'] * 1000:.1f} ms, "
            f"ratio {entry['p95 ratio live/immutable']:.2f}")
    return results


def while_writing(live: Server, db: Path, corpus: Corpus, rounds: int) -> dict:
    """Live latency while another connection commits a 2,000-row rewrite every second."""
    stop = threading.Event()
    commits = []

    def writer():
        conn = sqlite3.connect(db, timeout=60)
        (top,) = conn.execute("SELECT max(rowid) FROM papers").fetchone()
        step = 0
        while not stop.is_set():
            began = time.perf_counter()
            # A daily run's write: 2,000 papers' rows rewritten (values unchanged) in one commit.
            start = (step * 7919) % max(1, top - 2000)
            with conn:
                conn.execute("UPDATE papers SET last_run = last_run WHERE rowid BETWEEN ? AND ?", [start, start + 1999])
            commits.append(time.perf_counter() - began)
            step += 1
            stop.wait(1.0)
        conn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        results = {}
        for name, paths in pages(corpus).items():
            times = [live.timed(path) for _ in range(rounds) for path in paths]
            results[name] = summary(times)
            log(f"live while writing, {name}: p95 {results[name]['p95'] * 1000:.1f} ms")
    finally:
        stop.set()
        thread.join()
    results["commits"] = len(commits)
    return results


HUGE = {
    "printf %.*c 1e9": "select length(printf('%.*c', 1000000000, 'x'))",
    "zeroblob 1e8": "select zeroblob(100000000)",
    "randomblob 1e9": "select randomblob(1e9)",
}


def huge_values(server: Server) -> dict:
    """4 huge-value queries at once, new_today timed in a loop meanwhile (and a bit after)."""
    outcomes = []
    sql = [HUGE["printf %.*c 1e9"], HUGE["zeroblob 1e8"], HUGE["randomblob 1e9"], HUGE["printf %.*c 1e9"]]
    rss_before = server.rss()

    def huge(query):
        began = time.perf_counter()
        status, body = server.get("/ai4mat.json?" + urllib.parse.urlencode({"sql": query}))
        outcomes.append({"sql": query, "status": status, "seconds": time.perf_counter() - began, "bytes": len(body),
                         "error": json.loads(body).get("error") if status != 200 else None})

    new_today = []
    peak_sampled = 0
    for _ in range(5):  # five bursts of four
        threads = [threading.Thread(target=huge, args=(query,)) for query in sql]
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            new_today.append(server.timed("/ai4mat/new_today.json?_shape=array"))
            peak_sampled = max(peak_sampled, server.rss()[0])
        for thread in threads:
            thread.join()
        for _ in range(5):
            new_today.append(server.timed("/ai4mat/new_today.json?_shape=array"))
    rss_after = server.rss()
    result = {
        "queries": len(outcomes), "statuses": sorted({o["status"] for o in outcomes}),
        "errors": sorted({o["error"] for o in outcomes if o["error"]}),
        "max_seconds": max(o["seconds"] for o in outcomes), "max_bytes": max(o["bytes"] for o in outcomes),
        "rss_before": rss_before[0], "rss_sampled_max": peak_sampled, "peak_rss_after": rss_after[1],
        "new_today": summary(new_today),
    }
    log(f"huge values: {result}")
    return result


def scanning_table_views(server: Server) -> dict:
    results = {}
    for path in ("/ai4mat/papers?summary__glob=*x*", "/ai4mat/papers?_search=m*", "/ai4mat/papers.json?summary__glob=*x*",
                 "/ai4mat/papers?_search=model", "/ai4mat/papers?_where=summary+like+'%25zz%25'"):
        began = time.perf_counter()
        status, body = server.get(path)
        seconds = time.perf_counter() - began
        note = ""
        if status != 200:
            text = body.decode(errors="replace")
            note = next((known for known in ("SQL query took too long", "string or blob too big") if known in text), text[:80])
        elif b"facet_time_limit" in body or b"timed out" in body:
            note = "some facets timed out"
        results[path] = {"status": status, "seconds": seconds, "note": note}
        log(f"{path}: HTTP {status} in {seconds:.2f} s {note}")
    return results


def during_a_write(live: Server, immutable: Server, db: Path, new_papers: int = 3000) -> dict:
    """Clients on both servers while a daily run's worth of papers is stored into the file."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    (before,) = conn.execute("SELECT count(*) FROM versions").fetchone()
    papers = []
    stamp = int(time.time())  # new ids on every run of the benchmark
    for n, row in enumerate(conn.execute("SELECT * FROM papers ORDER BY rowid LIMIT ?", [new_papers])):
        paper = _paper_from_row(dict(row))
        paper.update(arxiv_id=f"bench-{stamp}/{n:05d}", version=1, title="Benchmark write: " + paper["title"])
        papers.append(paper)
    conn.close()
    stop = threading.Event()
    seen = {"live": [], "immutable": []}
    count_path = "/ai4mat.json?_shape=array&" + urllib.parse.urlencode({"sql": "select count(*) as n from versions"})

    def client(mode: str, server: Server):
        while not stop.is_set():
            for path in (count_path, "/ai4mat/new_today.json?_shape=array", "/ai4mat/search.json?_shape=array&q=model"):
                status, body = server.get(path, timeout=60)
                shown = json.loads(body)[0]["n"] if status == 200 and path == count_path else None
                seen[mode].append((path.split("?")[0], status, shown, body[:120] if status != 200 else b""))

    threads = [threading.Thread(target=client, args=(mode, server)) for mode, server in
               (("live", live), ("live", live), ("immutable", immutable), ("immutable", immutable))]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    began = time.perf_counter()
    with store.writing(db) as writer:
        run_id = store.start_run(writer, "benchmark write")
        with writer.atomic():
            store.save_papers(writer, run_id, papers)
        store.finish_run(writer, run_id, store.RunCounts(fetched=new_papers, new=new_papers))
    write_seconds = time.perf_counter() - began
    time.sleep(3.0)
    stop.set()
    for thread in threads:
        thread.join()
    after = before + new_papers
    result = {"write_seconds": write_seconds, "versions_before": before, "versions_after": after}
    for mode, answers in seen.items():
        counts = [shown for _, status, shown, _ in answers if shown is not None]
        failures = [(path, status, body.decode(errors="replace")) for path, status, _, body in answers if status != 200]
        result[mode] = {
            "requests": len(answers), "failed": len(failures), "failure_examples": sorted(set(failures))[:3],
            "version_counts_seen": sorted(set(counts)), "counts_neither_old_nor_new": len([c for c in counts if c not in (before, after)]),
        }
        log(f"during a write, {mode}: {result[mode]}")
    began = time.perf_counter()
    status, body = live.get("/ai4mat.db", timeout=600)
    result["first_download_after_the_write"] = {"status": status, "seconds": time.perf_counter() - began, "bytes": len(body)}
    began = time.perf_counter()
    status, body = live.get("/ai4mat.db", timeout=600)
    result["second_download_same_state"] = {"status": status, "seconds": time.perf_counter() - began}
    log(f"downloads: {result['first_download_after_the_write']}, {result['second_download_same_state']}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, required=True, help="a benchmark ai4mat.db that may be switched to WAL")
    parser.add_argument("--rounds", type=int, default=20, help="alternating rounds per page (search: x10 queries)")
    parser.add_argument("--out", type=Path, help="write the numbers as JSON here")
    parser.add_argument("--compare-only", action="store_true", help="step 1 only (the file is not written)")
    args = parser.parse_args(argv)
    if args.db.name != "ai4mat.db":
        parser.error("--db must be a file named ai4mat.db")
    corpus = Corpus()
    papers = sqlite3.connect(f"file:{args.db}?mode=ro", uri=True).execute("select count(*) from papers").fetchone()[0]
    log(f"{args.db}: {papers:,} papers")
    results: dict = {"papers": papers, "command": "python benchmarks/live.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    # An immutable server ignores the -wal file: fold it into the file first, so both serve one state.
    conn = sqlite3.connect(args.db, timeout=60)
    log(f"checkpoint: {conn.execute('PRAGMA wal_checkpoint(TRUNCATE)').fetchone()}")
    conn.close()
    live = Server(args.db)
    immutable = Server(args.db, "--immutable")
    log(f"{live.banner} / {immutable.banner}")
    try:
        results["compare"] = compare(live, immutable, corpus, args.rounds)
        if args.compare_only:
            return print(json.dumps(results, indent=2)) or 0
        results["live_while_writing"] = while_writing(live, args.db, corpus, max(2, args.rounds // 4))
        results["huge_values"] = huge_values(live)
        results["table_views"] = scanning_table_views(live)
        results["during_a_write"] = during_a_write(live, immutable, args.db)
    finally:
        live.stop()
        immutable.stop()
    text = json.dumps(results, indent=2)
    if args.out:
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

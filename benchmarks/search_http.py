#!/usr/bin/env python3
"""Latency of the canned `search` (and `related`) over HTTP through a real `ai4mat serve`.

    python benchmarks/search_http.py --db /path/to/ai4mat.db [--repeats 10]

Starts `ai4mat serve` on the file (immutable, the published settings, the plugins and their
embedding model: the start-up time reported includes loading it), then times each query of the
benchmark mix of benchmarks/run.py (`search_queries`: common to rare words, a prefix) plus the 20
researcher queries of search_dev.json, as the JSON array and as the HTML page a browser gets.
Reports p50, p95 and the worst request per form, and per query.
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from corpus import Corpus  # noqa: E402
from run import percentile, search_queries  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(port: int, path: str, conn: http.client.HTTPConnection) -> tuple[int, bytes]:
    conn.request("GET", path)
    response = conn.getresponse()
    return response.status, response.read()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    port = free_port()
    began = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "-m", "harvest", "serve", "--db", str(args.db.resolve()), "--port", str(port), "--immutable"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                if get(port, "/-/versions.json", conn)[0] == 200:
                    break
            except OSError:
                time.sleep(0.05)
            if server.poll() is not None:
                raise SystemExit(server.stderr.read().decode()[-2000:])
        startup = time.perf_counter() - began
        queries = [text for _, text in search_queries(Corpus())]
        queries += [q["q"] for q in json.loads((ROOT / "tests/fixtures/ai4mat/search_dev.json").read_text())["queries"]]
        forms = {
            "search JSON": lambda q: "/ai4mat/search.json?_shape=array&" + urllib.parse.urlencode({"q": q}),
            "search HTML": lambda q: "/ai4mat/search?" + urllib.parse.urlencode({"q": q}),
        }
        results = {"startup_seconds": startup, "forms": {}}
        for form, url in forms.items():
            every, per_query, first = [], {}, []
            for q in queries:
                t = time.perf_counter()
                status, body = get(port, url(q), conn)  # first: word counts not yet cached on this connection
                first.append(time.perf_counter() - t)
                if status != 200:
                    raise SystemExit(f"{url(q)}: HTTP {status}: {body[:300]!r}")
                times = []
                for _ in range(args.repeats):
                    t = time.perf_counter()
                    status, body = get(port, url(q), conn)
                    times.append(time.perf_counter() - t)
                    assert status == 200
                every += times
                per_query[q] = {"p50_ms": 1000 * percentile(times, 0.5), "p95_ms": 1000 * percentile(times, 0.95)}
            results["forms"][form] = {
                "p50_ms": 1000 * percentile(every, 0.5), "p95_ms": 1000 * percentile(every, 0.95),
                "max_ms": 1000 * max(every), "requests": len(every),
                "first_request_p50_ms": 1000 * percentile(first, 0.5), "first_request_max_ms": 1000 * max(first),
                "per_query": per_query,
            }
        # Related papers: the canned query and a paper page, for a few papers.
        ids = [row["arxiv_id"] for row in json.loads(get(port, "/ai4mat/search.json?_shape=array&q=diffusion", conn)[1])][:10]
        for form, url in {
            "related JSON": lambda a: "/ai4mat/related.json?_shape=array&arxiv_id=" + urllib.parse.quote(a),
            "paper page HTML": lambda a: "/ai4mat/papers/" + urllib.parse.quote(a.replace(".", "~2E").replace("/", "~2F")),
        }.items():
            times = []
            for a in ids:
                get(port, url(a), conn)
                for _ in range(args.repeats):
                    t = time.perf_counter()
                    status, _ = get(port, url(a), conn)
                    times.append(time.perf_counter() - t)
                    assert status == 200, (url(a), status)
            results["forms"][form] = {"p50_ms": 1000 * percentile(times, 0.5), "p95_ms": 1000 * percentile(times, 0.95), "max_ms": 1000 * max(times)}
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

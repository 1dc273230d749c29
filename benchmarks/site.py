#!/usr/bin/env python3
"""Time the site as a browser gets it: `python benchmarks/site.py --db FILE`.

Starts a real `ai4mat serve` over FILE (from --src, default this checkout, so an older checkout's
metadata, plugins and settings can be measured against the same file) and times, as HTML over
HTTP with counts and facets, p50/p95 of --repeats requests each after one warm-up:
  - the home page and every page it links to (the file download left out);
  - the papers page's and the home page's search boxes, redirects followed;
  - every facet value on the papers page (each click), and whether every facet rendered;
  - every canned query, with typical arguments.
Prints a Markdown table and writes the numbers as JSON to --out.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.parse
from html.parser import HTMLParser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FACETS_TIMED_OUT = b'class="facets-timed-out"'


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))]


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.hrefs.append(href)


class Site:
    """`ai4mat serve` as a real process, and a keep-alive client that follows redirects."""

    def __init__(self, db: Path, src: Path, immutable: bool = False):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        env = {**os.environ, "PYTHONPATH": str(src)}
        self.log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"site-bench-{self.port}.log", "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "harvest", "serve", "--db", str(db), "--port", str(self.port),
             *(["--immutable"] if immutable else [])],
            cwd=src, env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while True:
            try:
                status, _, _ = self.get("/-/versions.json")
                if status == 200:
                    break
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"ai4mat serve did not start (see {self.log.name})")
            time.sleep(0.5)
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)

    def get(self, path: str, conn: http.client.HTTPConnection | None = None) -> tuple[int, bytes, str]:
        """(status, body, final path), following up to 3 redirects on the same connection."""
        own = conn is None
        conn = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            for _ in range(4):
                conn.request("GET", path)
                response = conn.getresponse()
                body = response.read()
                location = response.getheader("location")
                if response.status in (301, 302) and location:
                    path = urllib.parse.urlsplit(location)._replace(scheme="", netloc="").geturl()
                    continue
                return response.status, body, path
            return response.status, body, path
        finally:
            if own:
                conn.close()

    def timed(self, path: str, repeats: int) -> dict:
        began = time.perf_counter()
        status, body, final = self.get(path, self.conn)  # warm-up: a first visit, caches cold
        first_ms = (time.perf_counter() - began) * 1000
        times = []
        for _ in range(repeats):
            began = time.perf_counter()
            status, body, final = self.get(path, self.conn)
            times.append((time.perf_counter() - began) * 1000)
        return {
            "path": path, "final": final, "status": status, "bytes": len(body),
            "facets_timed_out": FACETS_TIMED_OUT in body,
            "first_ms": first_ms, "p50_ms": statistics.median(times), "p95_ms": percentile(times, 0.95),
            "max_ms": max(times),
        }

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def home_links(site: Site) -> list[str]:
    status, body, _ = site.get("/")
    assert status == 200, status
    parser = Links()
    parser.feed(body.decode("utf-8"))
    paths = []
    for href in parser.hrefs:
        parts = urllib.parse.urlsplit(href)
        if parts.netloc not in ("", f"127.0.0.1:{site.port}") or not parts.path.startswith("/"):
            continue  # another site
        if parts.path.endswith(".db") or parts.path.startswith("/-/"):
            continue  # the multi-GB download; Datasette's own debug pages
        path = parts.path + ("?" + parts.query if parts.query else "")
        if path not in paths:
            paths.append(path)
    return ["/", *[path for path in paths if path != "/"]]


def wait_for_startup_counts(site: Site, immutable: bool, timeout: float = 300) -> float:
    """Seconds until the papers page and a click on a column facet show every facet.

    At a million papers those counts take 40 s or more on a busy machine; pages timed before
    they are ready measure the start-up, and the facet clicks would find no values to click.
    """
    began = time.monotonic()
    pages = ["/ai4mat/papers"]
    # Live, the counts within a primary category are made in a thread that the first click on
    # one starts, once per committed state (plugins/ai4mat_facets.py); the same wait covers it.
    while pages and time.monotonic() - began < timeout:
        status, body, _ = site.get(pages[0])  # the JSON does not say which facets timed out
        if status == 200 and FACETS_TIMED_OUT not in body:
            if pages[0] == "/ai4mat/papers":
                # Then a click on a column facet, whose counts of the child facets come last.
                pages += [path for name, path in facet_clicks(site, 1) if path.startswith("/ai4mat/papers?") and "_through" not in path][:1]
            pages.pop(0)
            continue
        time.sleep(2)
    return time.monotonic() - began


def facet_clicks(site: Site, limit: int | None) -> list[tuple[str, str]]:
    """(facet name, HTML path) for every value of every facet on the papers page."""
    status, body, _ = site.get("/ai4mat/papers.json")
    assert status == 200, body[:300]
    clicks = []
    for name, facet in json.loads(body)["facet_results"].items():
        for value in facet["results"][:limit]:
            parts = urllib.parse.urlsplit(value["toggle_url"])
            clicks.append((f"{name}={value['value']}", parts.path.removesuffix(".json") + "?" + parts.query))
    return clicks


CANNED = [
    ("search q=model", "/ai4mat/search?q=model"),
    ("search q=neural network", "/ai4mat/search?q=neural+network"),
    ("search q=diffus*", "/ai4mat/search?q=diffus%2A"),
    ("new_today", "/ai4mat/new_today"),
    ("new_this_week", "/ai4mat/new_this_week"),
    ("by_category cond-mat.mtrl-sci", "/ai4mat/by_category?category=cond-mat.mtrl-sci"),
    ("by_category cs.LG", "/ai4mat/by_category?category=cs.LG"),
    ("papers_per_month", "/ai4mat/papers_per_month"),
    ("runs", "/ai4mat/runs"),
    ("feed", "/ai4mat/feed.atom"),
    ("by_tag diffusion model", "/ai4mat/by_tag?tags=diffusion+model"),
    ("by_elements Li,Fe,P,O", "/ai4mat/by_elements?elements=Li%2CFe%2CP%2CO"),
    ("with_code", "/ai4mat/with_code?tag="),
    ("health", "/ai4mat/health"),
    ("feed_search q=model", "/ai4mat/feed_search.atom?q=model"),
    ("feed_search q=perovsk*", "/ai4mat/feed_search.atom?q=perovsk%2A"),
    ("feed_category cond-mat.mtrl-sci", "/ai4mat/feed_category.atom?category=cond-mat.mtrl-sci"),
    ("feed_tag diffusion model", "/ai4mat/feed_tag.atom?tag=diffusion+model"),
]
SEARCH_BOXES = [
    ("papers search box: model", "/ai4mat/papers?_search=model"),
    ("papers search box: perovsk*", "/ai4mat/papers?_search=perovsk%2A"),
    ("home search box: model", "/ai4mat/search?q=model"),
]


def data_dependent(db: Path) -> list[tuple[str, str]]:
    """A real author and paper id from the file, for by_author and paper_history."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        # An arXiv id, not one of the ids benchmarks/scale_copy.py makes up for copies (2601.00001x3).
        arxiv_id, authors = conn.execute(
            "select arxiv_id, authors from papers where arxiv_id not like '%x%' order by rowid desc limit 1"
        ).fetchone()
        # A page of by_category halfway through its largest category (keyset paging with `before`).
        category = conn.execute("select category from paper_categories group by category order by count(*) desc limit 1").fetchone()
        middle = conn.execute(
            "select updated, arxiv_id from paper_categories where category = ? and updated is not null "
            "order by updated desc, arxiv_id desc limit 1 offset (select count(*) / 2 from paper_categories where category = ?)",
            [category[0], category[0]],
        ).fetchone() if category else None
    finally:
        conn.close()
    pages = [
        ("by_author", "/ai4mat/by_author?" + urllib.parse.urlencode({"name": json.loads(authors)[0]})),
        ("feed_author", "/ai4mat/feed_author.atom?" + urllib.parse.urlencode({"name": json.loads(authors)[0]})),
        ("paper_history", "/ai4mat/paper_history?" + urllib.parse.urlencode({"arxiv_id": arxiv_id})),
        ("related", "/ai4mat/related?" + urllib.parse.urlencode({"arxiv_id": arxiv_id})),
    ]
    if middle:
        before = f"{middle[0]},{middle[1]}"
        pages.append((f"by_category {category[0]} halfway", "/ai4mat/by_category?" + urllib.parse.urlencode({"category": category[0], "before": before})))
    return pages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, required=True, help="the dataset to serve (not written)")
    parser.add_argument("--src", type=Path, default=ROOT, help="checkout whose harvest/, metadata.yml and plugins/ serve it")
    parser.add_argument("--repeats", type=int, default=10, help="timed requests per page (after one warm-up)")
    parser.add_argument("--facet-values", type=int, default=None, help="values clicked per facet (default: all)")
    parser.add_argument("--out", type=Path, default=None, help="write the numbers here as JSON")
    parser.add_argument("--immutable", action="store_true",
                        help="serve as the published site does (ai4mat serve --immutable); else ai4mat serve's "
                             "default, live mode for a writable file, where the facet plugin counts per request")
    args = parser.parse_args(argv)

    load_before = os.getloadavg()
    site = Site(args.db.resolve(), args.src.resolve(), immutable=args.immutable)
    try:
        log(f"facets ready after {wait_for_startup_counts(site, args.immutable):.0f} s")
        pages = [(f"home link {path}", path) for path in home_links(site)]
        pages += [(f"search box: {label}", path) for label, path in SEARCH_BOXES]
        canned = data_dependent(args.db)
        pages += [(f"canned {label}", path) for label, path in CANNED + canned]
        paper = urllib.parse.parse_qs(urllib.parse.urlsplit(dict(canned)["related"]).query)["arxiv_id"][0]
        pages.append(("row page of a paper", "/ai4mat/papers/" + urllib.parse.quote(paper, safe="")))
        pages += [(f"facet click {label}", path) for label, path in facet_clicks(site, args.facet_values)]
        results = []
        for label, path in pages:
            result = {"label": label, **site.timed(path, args.repeats)}
            results.append(result)
            log(f"{label}: {result['status']} p50 {result['p50_ms']:.0f} ms p95 {result['p95_ms']:.0f} ms")
    finally:
        site.stop()
    summary = {
        "db": str(args.db), "src": str(args.src), "repeats": args.repeats, "immutable": args.immutable,
        "load_before": load_before, "load_after": os.getloadavg(), "results": results,
        "worst_p95_ms": max(r["p95_ms"] for r in results),
        "over_300ms": [r["label"] for r in results if r["p95_ms"] >= 300],
        "not_200": [r["label"] for r in results if r["status"] != 200],
        "facets_timed_out": [r["label"] for r in results if r["facets_timed_out"]],
    }
    if args.out:
        args.out.write_text(json.dumps(summary, indent=1))
    print("| page | status | first ms | p50 ms | p95 ms |\n| --- | ---: | ---: | ---: | ---: |")
    for r in results:
        flag = " (facets timed out)" if r["facets_timed_out"] else ""
        print(f"| {r['label']}{flag} | {r['status']} | {r['first_ms']:,.0f} | {r['p50_ms']:,.1f} | {r['p95_ms']:,.1f} |")
    print(f"\nload average before {load_before}, after {summary['load_after']}; "
          f"worst p95 {summary['worst_p95_ms']:,.0f} ms; p95 >= 300 ms: {len(summary['over_300ms'])}; "
          f"not 200: {summary['not_200']}; facets timed out: {summary['facets_timed_out']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

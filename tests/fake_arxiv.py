"""A fake arXiv query API over real HTTP on 127.0.0.1, with fault injection.

It pages, sorts and filters (`submittedDate:[... TO ...]`) a list of paper dicts like arXiv
does, renders them in the new (2025+) or old backend's Atom style, and can be told to answer
chosen requests with a fault instead. Every request is logged with its query parameters and
headers, so tests can assert exactly what the client asked for.
"""

from __future__ import annotations

import datetime
import gzip
import re
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse
from xml.sax.saxutils import escape, quoteattr

FIXTURES = Path(__file__).parent / "fixtures"

FAULTS = (
    "http500", "http503", "http429", "http406", "timeout", "reset", "cut", "truncated",
    "empty", "error_feed", "html200", "slow", "trickle", "hold", "gzip_bomb",
)
ERROR_FEED = (FIXTURES / "atom_2026_error_incorrect_id_format_http400.xml").read_bytes()
HTML_PAGE = b"<!DOCTYPE html><html><head><title>503 Service Unavailable</title></head><body><h1>arXiv is busy</h1><p>Please try again.</p></body></html>"
DATE_RANGE_RE = re.compile(r"submittedDate:\[(\d{12}) TO (\d{12})\]")


def make_paper(n: int, *, version: int = 1, day: str = "2026-11-20", **fields) -> dict:
    """A plausible paper numbered `n`; any field can be overridden."""
    arxiv_id = fields.pop("arxiv_id", f"2611.{n:05d}")
    stamp = fields.pop("updated", f"{day}T{(n // 3600) % 24:02d}:{(n // 60) % 60:02d}:{n % 60:02d}Z")
    paper = {
        "arxiv_id": arxiv_id,
        "version": version,
        "title": f"Generative model {n} for inverse materials design",
        "summary": f"We present generative model number {n} for crystal structure prediction.\nIt is tested on {n} materials.",
        "authors": [f"Author {n} A", f"Author {n} B"],
        "primary_category": "cond-mat.mtrl-sci",
        "categories": ["cond-mat.mtrl-sci", "cs.LG"],
        "published": fields.pop("published", stamp),
        "updated": stamp,
        "comment": None,
        "journal_ref": None,
        "doi": None,
    }
    paper.update(fields)
    return paper


def render_feed(papers: list[dict], *, total: int, start: int, style: str = "new", query: str = "") -> bytes:
    """An Atom feed as arXiv serves it: `style` "new" (2025+ backend) or "old" (namespaces per element, wrapped)."""
    out = ["<?xml version='1.0' encoding='UTF-8'?>"]
    if style == "new":
        out.append(
            '<feed xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/" '
            'xmlns:arxiv="http://arxiv.org/schemas/atom" xmlns="http://www.w3.org/2005/Atom">'
        )
        out.append(f"  <id>https://arxiv.org/api/fake</id>\n  <title>arXiv Query: {escape(query)}</title>")
        out.append("  <updated>2026-11-21T00:00:00Z</updated>")
        out.append(f"  <opensearch:itemsPerPage>{len(papers)}</opensearch:itemsPerPage>")
        out.append(f"  <opensearch:totalResults>{total}</opensearch:totalResults>")
        out.append(f"  <opensearch:startIndex>{start}</opensearch:startIndex>")
    else:
        out.append('<feed xmlns="http://www.w3.org/2005/Atom">')
        out.append(f'  <title type="html">ArXiv Query: {escape(query)}</title>')
        out.append("  <id>http://arxiv.org/api/fake</id>\n  <updated>2026-11-20T00:00:00-05:00</updated>")
        ns = 'xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/"'
        out.append(f"  <opensearch:totalResults {ns}>{total}</opensearch:totalResults>")
        out.append(f"  <opensearch:startIndex {ns}>{start}</opensearch:startIndex>")
        out.append(f"  <opensearch:itemsPerPage {ns}>{len(papers)}</opensearch:itemsPerPage>")
    for paper in papers:
        out.append(_entry(paper, style))
    out.append("</feed>\n")
    return "\n".join(out).encode("utf-8")


def _entry(paper: dict, style: str) -> str:
    full_id = f"{paper['arxiv_id']}v{paper['version']}"
    scheme = "https" if style == "new" else "http"
    arxiv_ns = "" if style == "new" else ' xmlns:arxiv="http://arxiv.org/schemas/atom"'
    summary = paper["summary"] if style == "new" else "  " + paper["summary"] + "\n"
    entry_id = paper.get("entry_id", f"http://arxiv.org/abs/{full_id}")
    lines = [
        "  <entry>",
        f"    <id>{escape(entry_id)}</id>",
        f"    <title>{escape(paper['title'])}</title>",
        f"    <updated>{paper['updated']}</updated>",
        f"    <link href={quoteattr(f'{scheme}://arxiv.org/abs/{full_id}')} rel=\"alternate\" type=\"text/html\"/>",
        f"    <link href={quoteattr(f'{scheme}://arxiv.org/pdf/{full_id}')} rel=\"related\" type=\"application/pdf\" title=\"pdf\"/>",
        f"    <summary>{escape(summary)}</summary>",
    ]
    lines += [f'    <category term={quoteattr(c)} scheme="http://arxiv.org/schemas/atom"/>' for c in paper["categories"]]
    lines.append(f"    <published>{paper['published']}</published>")
    if paper.get("comment") is not None:
        lines.append(f"    <arxiv:comment{arxiv_ns}>{escape(paper['comment'])}</arxiv:comment>")
    lines.append(f"    <arxiv:primary_category{arxiv_ns} term={quoteattr(paper['primary_category'])}/>")
    if paper.get("journal_ref") is not None:
        lines.append(f"    <arxiv:journal_ref{arxiv_ns}>{escape(paper['journal_ref'])}</arxiv:journal_ref>")
    lines += [f"    <author>\n      <name>{escape(name)}</name>\n    </author>" for name in paper["authors"]]
    if paper.get("doi") is not None:
        lines.append(f"    <arxiv:doi{arxiv_ns}>{escape(paper['doi'])}</arxiv:doi>")
    lines.append("  </entry>")
    return "\n".join(lines)


class _QuietServer(ThreadingHTTPServer):
    """Stays quiet when a client hangs up first (after its own timeout, or after a `reset`)."""

    daemon_threads = True

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


def error_feed(message: str) -> bytes:
    """arXiv's error answer: a feed with one entry titled Error whose summary is the message."""
    return ERROR_FEED.replace(b"incorrect id format for abc", escape(message).encode("utf-8"))


@dataclass
class Request:
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    at: float


@dataclass
class FakeArxiv:
    """Serve `papers` like the arXiv query API. Set `faults[n] = "http503"` to fault the n-th request (1-based)."""

    papers: list[dict] = field(default_factory=list)
    faults: dict[int, str] = field(default_factory=dict)
    style: str = "new"
    timeout_seconds: float = 3.0  # how long "timeout" stalls; longer than the client's read timeout in tests
    slow_seconds: float = 0.3
    trickle_seconds: float = 0.05  # "trickle": the body in 256-byte pieces this far apart
    release: threading.Event = field(default_factory=threading.Event)  # "hold": answer once set (30 s at most)
    bomb_bytes: int = 16 * 2**20  # "gzip_bomb": this many zero bytes, gzipped to a few KB
    retry_after: str = "1"
    requests: list[Request] = field(default_factory=list)
    raw_pages: dict[int, bytes] = field(default_factory=dict)  # request number -> exact bytes to serve
    query_limit: int = 30_000  # like arXiv: HTTP 400 and an error feed when start + max_results exceeds it

    def __post_init__(self):
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out as two writes; no 40 ms delayed-ACK stall

            def log_message(self, *args):
                pass

            def do_GET(self):
                fake._handle(self)

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/query"

    def start(self) -> "FakeArxiv":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ------------------------------------------------------------ answering

    def matching(self, query: str) -> list[dict]:
        papers = self.papers
        window = DATE_RANGE_RE.search(query)
        if window:
            low, high = (datetime.datetime.strptime(v, "%Y%m%d%H%M").strftime("%Y-%m-%dT%H:%M") for v in window.groups())
            papers = [p for p in papers if low <= p["published"][:16] <= high]
        return papers

    def page(self, params: dict[str, str]) -> tuple[bytes, int]:
        query = params.get("search_query", "")
        papers = list(self.matching(query))
        key = "updated" if params.get("sortBy", "relevance") == "lastUpdatedDate" else "published"
        papers.sort(key=lambda p: (p[key], p["arxiv_id"]), reverse=params.get("sortOrder") != "ascending")
        start = int(params.get("start", 0))
        size = int(params.get("max_results", 10))
        return render_feed(papers[start : start + size], total=len(papers), start=start, style=self.style, query=query), len(papers)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parsed = urlparse(handler.path)
        params = {k: v[0] for k, v in parse_qs(parsed.query, keep_blank_values=True).items()}
        with self._lock:
            self.requests.append(Request(parsed.path, params, dict(handler.headers), time.monotonic()))
            number = len(self.requests)
        fault = self.faults.get(number)
        if number in self.raw_pages:
            return self._send(handler, 200, self.raw_pages[number])
        if int(params.get("start", 0)) + int(params.get("max_results", 10)) > self.query_limit:
            return self._send(handler, 400, error_feed(f"start + max_results must not exceed {self.query_limit}"))
        if fault is None:
            body, _ = self.page(params)
            return self._send(handler, 200, body)
        if fault in ("http500", "http503", "http429", "http406"):
            headers = {"Retry-After": self.retry_after} if fault in ("http503", "http429") else {}
            return self._send(handler, int(fault[4:]), b"<html><body>error</body></html>", "text/html", headers)
        if fault == "timeout":
            time.sleep(self.timeout_seconds)
            body, _ = self.page(params)
            return self._send(handler, 200, body)
        if fault == "gzip_bomb":
            bomb = gzip.compress(b"\0" * self.bomb_bytes, compresslevel=1)
            return self._send(handler, 200, bomb, headers={"Content-Encoding": "gzip"})
        if fault == "hold":  # keep the client waiting until the test says so
            self.release.wait(30)
            body, _ = self.page(params)
            return self._send(handler, 200, body)
        if fault == "trickle":  # never idle long enough for a read timeout, never done either
            body, _ = self.page(params)
            handler.send_response(200)
            handler.send_header("Content-Type", "application/atom+xml; charset=utf-8")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            for piece in range(0, len(body), 256):
                handler.wfile.write(body[piece : piece + 256])
                handler.wfile.flush()
                time.sleep(self.trickle_seconds)
            return None
        if fault == "slow":
            time.sleep(self.slow_seconds)
            body, _ = self.page(params)
            return self._send(handler, 200, body)
        if fault == "reset":
            handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            handler.connection.close()
            handler.close_connection = True
            return None
        if fault == "cut":  # promise a full body, send half, hang up
            body, _ = self.page(params)
            handler.send_response(200)
            handler.send_header("Content-Type", "application/atom+xml")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body[: len(body) // 2])
            handler.wfile.flush()
            handler.close_connection = True
            return None
        if fault == "truncated":  # a short body that says it is complete
            body, _ = self.page(params)
            return self._send(handler, 200, body[: len(body) // 2])
        if fault == "empty":
            _, total = self.page(params)
            return self._send(handler, 200, render_feed([], total=total, start=int(params.get("start", 0)), style=self.style))
        if fault == "error_feed":
            return self._send(handler, 400, ERROR_FEED)
        if fault == "html200":
            return self._send(handler, 200, HTML_PAGE, "text/html")
        raise ValueError(f"unknown fault {fault!r}")

    @staticmethod
    def _send(handler, status: int, body: bytes, content_type: str = "application/atom+xml", headers: dict | None = None):
        handler.send_response(status)
        handler.send_header("Content-Type", f"{content_type}; charset=utf-8")
        handler.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)

"""The published site under hostile content and hostile use: `ai4mat serve` as a real process.

The dataset is harvested from the hostile papers of hostile_data.py through the fake API.
Checks: the instance is read-only (immutable file, no write canned query, no write SQL, every
method but GET/HEAD/OPTIONS refused) and the file is byte-for-byte unchanged after everything
below; an expensive query through `/ai4mat?sql=` is cut off by sql_time_limit_ms while the
server keeps answering others; 2,000 requests, 20 at a time, get no 5xx; pages escape every
payload, the Atom feed is well-formed XML holding the hostile text exactly, and in a real
headless Chromium no script from the data runs.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import os
import shutil
import sqlite3
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from harvest.cli import cli

from .dumps import directory_listing, file_state
from .fake_arxiv import FakeArxiv
from .hostile_data import HOSTILE, hostile_papers
from .site_data import chromium_binary, serving

REPO = Path(__file__).resolve().parent.parent
ATOM = "{http://www.w3.org/2005/Atom}"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
# Raw payload openings that must never reach a page unescaped.
RAW_PAYLOADS = ("<script>document.documentElement", "<img src=x onerror=", "<svg onload=")


def get(url: str, method: str = "GET", timeout: float = 20) -> tuple[int, bytes]:
    request = urllib.request.Request(url, method=method, data=b"sql=delete+from+papers" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A hostile dataset served by `python -m harvest serve`; yields (base URL, file, its state before)."""
    folder = tmp_path_factory.mktemp("served")
    db_path, config = folder / "ai4mat.db", folder / "config.json"
    config.write_text(json.dumps({"query": "q", "delay_seconds": 0, "page_size": 5}))
    with FakeArxiv() as fake:
        fake.papers = hostile_papers()
        result = CliRunner().invoke(
            cli, ["harvest", "--db", str(db_path), "--config", str(config), "--api-url", fake.url], catch_exceptions=False
        )
    assert result.exit_code == 0, result.output
    before = file_state(db_path), directory_listing(folder)
    # As published (scripts/publish.sh): immutable. Live serving's own checks are in test_live_serving.py.
    with serving(db_path, "--immutable") as (_, base, _):
        yield base.rstrip("/"), db_path, before


def sql_url(base: str, sql: str, fmt: str = ".json") -> str:
    return f"{base}/ai4mat{fmt}?" + urllib.parse.urlencode({"sql": sql})


# ------------------------------------------------------------------ read-only


def test_metadata_has_no_write_query():
    metadata = yaml.safe_load((REPO / "metadata.yml").read_text())
    queries = metadata["databases"]["ai4mat"]["queries"]
    assert queries and not [name for name, query in queries.items() if query.get("write")]


def test_instance_is_read_only(site):
    base, db_path, before = site
    status, body = get(base + "/-/databases.json")
    assert status == 200
    assert [(d["name"], d["is_mutable"]) for d in json.loads(body)] == [("ai4mat", False)]
    status, body = get(base + "/ai4mat.json")
    queries = json.loads(body)["queries"]
    assert [q["name"] for q in queries] == list(yaml.safe_load((REPO / "metadata.yml").read_text())["databases"]["ai4mat"]["queries"])
    assert [q["name"] for q in queries if q.get("write")] == []
    writes = {
        "delete from papers": "Statement must be a SELECT",
        "update papers set title = 'x'": "Statement must be a SELECT",
        "insert into runs (query, status, started_at) values ('q', 'ok', 'now')": "Statement must be a SELECT",
        "drop table versions": "Statement must be a SELECT",
        "attach database '/tmp/elsewhere.db' as elsewhere": "Statement must be a SELECT",
        "pragma writable_schema = 1": "Statement must be a SELECT",
        "vacuum into '/tmp/copy.db'": "Statement must be a SELECT",
        "select load_extension('/tmp/evil')": "not authorized",
        "select writefile('/tmp/evil', 'x')": "no such function: writefile",
    }
    for sql, error in writes.items():
        status, body = get(sql_url(base, sql))
        assert (status, json.loads(body)["error"]) == (400, error), sql
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        for path in ("/ai4mat/new_today", "/ai4mat/papers", "/ai4mat", "/ai4mat/-/create"):
            assert get(base + path, method=method) == (405, b"Method not allowed: this dataset is read-only\n"), (method, path)
    assert not Path("/tmp/elsewhere.db").exists() and not Path("/tmp/copy.db").exists()
    assert (file_state(db_path), directory_listing(db_path.parent)) == before


def test_serves_from_a_read_only_mount_with_the_file_open_read_only(site, tmp_path):
    """Datasette opens an immutable file read-write at the OS level (SQLite's immutable=1 only
    promises not to write). On a read-only mount SQLite falls back to a read-only descriptor, and
    the site works the same: a deployment can make read-only a fact of the kernel."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("a read-only bind mount needs root and mount(8)")
    folder = tmp_path / "ro"
    folder.mkdir()
    shutil.copy(site[1], folder / "ai4mat.db")
    done = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"bind mounts are not permitted here ({done.stderr.strip()})")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], check=True, capture_output=True)
        with serving(folder / "ai4mat.db") as (process, base, _):
            status, body = get(f"{base}ai4mat/papers.json?_shape=array&_size=20")
            assert (status, len(json.loads(body))) == (200, 12)
            modes = set()
            for fd in Path(f"/proc/{process.pid}/fd").iterdir():
                if os.readlink(fd) == str(folder / "ai4mat.db"):
                    flags = int(Path(f"/proc/{process.pid}/fdinfo/{fd.name}").read_text().split("flags:")[1].split()[0], 8)
                    modes.add(flags & os.O_ACCMODE)
            assert modes == {os.O_RDONLY}
    finally:
        subprocess.run(["umount", str(folder)], check=True)


# ------------------------------------------------------------------ time limit and load

ENDLESS = "with recursive n(i) as (select 1 union all select i + 1 from n) select count(*) from n"


def test_expensive_query_is_cut_off_while_others_are_answered(site):
    base = site[0]
    outcome = {}

    def expensive():
        began = time.monotonic()
        outcome["status"], outcome["body"] = get(sql_url(base, ENDLESS, ""), timeout=30)
        outcome["seconds"] = time.monotonic() - began

    worker = threading.Thread(target=expensive)
    worker.start()
    time.sleep(0.5)
    quick = []
    while worker.is_alive() and len(quick) < 10:
        began = time.monotonic()
        status, body = get(base + "/ai4mat/papers.json?_size=3&_shape=array")
        quick.append((status, len(json.loads(body)), time.monotonic() - began))
    worker.join()
    assert outcome["status"] == 400
    assert b"SQL query took too long. The time limit is controlled by the" in outcome["body"]
    assert 2.9 <= outcome["seconds"] < 6  # sql_time_limit_ms is 3000
    assert len(quick) >= 3 and all(q[:2] == (200, 3) for q in quick)
    assert max(q[2] for q in quick) < 2.0, quick  # queued behind the expensive one, they would take 3 s
    assert get(base + "/ai4mat/runs.json?_shape=array")[0] == 200


# What readers, feed readers and scripts call most; each answer runs SQL on the file. (The
# heaviest HTML pages, 50-150 ms each on this machine, would make this a 40 s test.)
LOAD_PATHS = [
    "/ai4mat/papers.json?_shape=array&_size=20", "/ai4mat/new_today.json?_shape=array", "/ai4mat/feed.atom",
    "/ai4mat/search.json?q=diffusion&_shape=array", "/ai4mat/papers/2611~2E00001.json", "/ai4mat/runs.json",
    "/ai4mat/paper_history.json?arxiv_id=2611.00002", "/-/search.json?q=graph", "/ai4mat/papers_per_month.json",
    "/ai4mat/search?q=diffusion", "/ai4mat/papers/2611~2E00008",
]


def test_bounded_load_gets_no_5xx(site):
    """2,000 GETs over 20 keep-alive connections on loopback."""
    base = site[0]
    host, port = urllib.parse.urlsplit(base).hostname, urllib.parse.urlsplit(base).port

    def client(worker: int) -> list[int]:
        connection = http.client.HTTPConnection(host, port, timeout=30)
        statuses = []
        for n in range(100):
            connection.request("GET", LOAD_PATHS[(worker * 7 + n) % len(LOAD_PATHS)])
            response = connection.getresponse()
            response.read()
            statuses.append(response.status)
        connection.close()
        return statuses

    began = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        statuses = [status for result in pool.map(client, range(20)) for status in result]
    seconds = time.monotonic() - began
    assert len(statuses) == 2000
    assert {status: statuses.count(status) for status in set(statuses)} == {200: 2000}
    print(f"\n2,000 requests, 20 concurrent: {seconds:.1f} s, {2000 / seconds:.0f} requests/s, no 5xx")


# ------------------------------------------------------------------ hostile content in pages and feed

SCRIPT_AS_TEXT = "&lt;script&gt;document.documentElement.setAttribute("
PAGES = {
    # page -> hostile text it must show, escaped
    "/ai4mat/papers/2611~2E00001": SCRIPT_AS_TEXT,
    "/ai4mat/papers/2611~2E00002": "&lt;img src=x onerror=",
    "/ai4mat/papers/2611~2E00003": "&lt;!-- ARXIV_PAPERS_END --&gt;",
    "/ai4mat/papers/2611~2E00004": "[link](javascript:document.documentElement",
    "/ai4mat/papers/2611~2E00008": SCRIPT_AS_TEXT,
    "/ai4mat/papers": "&lt;img src=x onerror=",
    "/ai4mat/new_today": SCRIPT_AS_TEXT,
    "/ai4mat/versions": "&lt;img src=x onerror=",
    "/ai4mat/search?q=show": SCRIPT_AS_TEXT,
    "/ai4mat/search?q=graph": "&lt;img src=x onerror=",
    "/ai4mat/papers?_search=diffusion": SCRIPT_AS_TEXT,
    "/ai4mat/paper_authors?arxiv_id=2611.00008&_size=max": SCRIPT_AS_TEXT,
    "/ai4mat/feed": SCRIPT_AS_TEXT,
}


@pytest.mark.parametrize("path", PAGES)
def test_pages_escape_every_payload(site, path):
    status, body = get(site[0] + path)
    page = body.decode("utf-8")
    assert status == 200
    assert [payload for payload in RAW_PAYLOADS if payload in page] == []
    assert PAGES[path] in page


def test_atom_feed_is_well_formed_and_holds_the_text_exactly(site):
    base, db_path, _ = site
    status, body = get(base + "/ai4mat/feed.atom")
    assert status == 200
    feed = ElementTree.fromstring(body)  # strict XML: raises on anything malformed
    entries = feed.findall(f"{ATOM}entry")
    assert len(entries) == 12
    papers = {paper["arxiv_id"]: paper for paper in hostile_papers()}
    by_id = {entry.find(f"{ATOM}id").text.rsplit("/", 1)[1].removesuffix("v1"): entry for entry in entries}
    assert sorted(by_id) == sorted(papers)
    for number, (name, (fields, stored)) in enumerate(HOSTILE.items(), 1):
        entry = by_id[f"2611.{number:05d}"]
        expected_title = stored.get("title", " ".join(fields["title"].split()))
        assert entry.find(f"{ATOM}title").text == expected_title, name
        content = entry.find(f"{ATOM}content").text or ""
        # The abstract exactly, then the paper's tags (those the enrichment stored) on their own line.
        conn = sqlite3.connect(db_path)
        try:
            (tags,) = conn.execute(
                "select group_concat(tag, ', ') from paper_tags where arxiv_id = ?", [f"2611.{number:05d}"]
            ).fetchone()
        finally:
            conn.close()
        summary = stored.get("summary", fields.get("summary", papers[f"2611.{number:05d}"]["summary"]).strip())
        assert content == summary + (f"\n\nTags: {tags}" if tags else ""), name


# ------------------------------------------------------------------ a real browser


def dump_dom(binary: str, profile: Path, url: str) -> str:
    result = subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--dump-dom", url],
        capture_output=True, text=True, timeout=90,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


BROWSER_PAGES = [
    "/ai4mat/papers/2611~2E00001", "/ai4mat/papers/2611~2E00002", "/ai4mat/papers/2611~2E00008",
    "/ai4mat/new_today", "/ai4mat/search?q=show", "/-/search?q=graph",
]


@pytest.mark.browser
def test_no_script_from_data_runs_in_chromium(site, tmp_path):
    """Each page's DOM after its own scripts ran (search-all renders results with JavaScript)."""
    binary = chromium_binary()
    base = site[0]
    # The detector works: the same payloads, unescaped, do mark the document.
    control = tmp_path / "control.html"
    control.write_text(
        "<html><body>" + hostile_papers()[0]["title"] + hostile_papers()[1]["title"] + "</body></html>"
    )
    pages = [control.as_uri()] + [base + path for path in BROWSER_PAGES]
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        doms = list(pool.map(lambda item: dump_dom(binary, tmp_path / f"profile-{item[0]}", item[1]), enumerate(pages)))
    def html_tag(dom: str) -> str:
        return dom[dom.index("<html") :].split(">", 1)[0]

    assert html_tag(doms[0]).startswith('<html data-xss="')
    for url, dom in zip(pages[1:], doms[1:]):
        assert html_tag(dom) == "<html", url
        # Rendered, as text: the payload shows as its source.
        assert "setAttribute('data-xss','" in dom, url

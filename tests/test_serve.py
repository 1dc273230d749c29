"""`ai4mat serve`: its command line, its refusals, and the real site over HTTP and in Chromium."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import feedparser
import pytest
from click.testing import CliRunner

from harvest.cli import cli
from harvest.store import SCHEMA_VERSION
from harvest.serve import datasette_argv

from .site_data import METADATA_PATH, ROOT, build_site_db, chromium_binary, serving

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]


def test_datasette_argv_live_serves_mutable_without_caching():
    assert datasette_argv("data/ai4mat.db", metadata_path="site/metadata.yml", port=9000, mode="live") == [
        sys.executable, "-m", "datasette", "serve", "data/ai4mat.db",
        "--metadata", "site/metadata.yml", "--plugins-dir", "site/plugins",
        "--host", "127.0.0.1", "--port", "9000",
        "--setting", "sql_time_limit_ms", "3000", "--setting", "max_returned_rows", "1000",
        "--setting", "default_cache_ttl", "0", "--setting", "suggest_facets", "off", "--cors",
    ]


def test_datasette_argv_serves_immutable_with_the_site_settings():
    assert datasette_argv("data/ai4mat.db", metadata_path="site/metadata.yml", host="0.0.0.0", port=9000) == [
        sys.executable, "-m", "datasette", "serve", "-i", "data/ai4mat.db",
        "--metadata", "site/metadata.yml", "--plugins-dir", "site/plugins",
        "--host", "0.0.0.0", "--port", "9000",
        "--setting", "sql_time_limit_ms", "3000", "--setting", "max_returned_rows", "1000",
        "--setting", "default_cache_ttl", "3600", "--setting", "suggest_facets", "off", "--cors",
    ]


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda d: None, "Error: serve: {db}: database not found (run `ai4mat harvest --db {db}` first)\n"),
        (lambda d: (d / "ai4mat.db").write_text("hello"), "Error: serve: {db}: not an SQLite database; refusing to touch it\n"),
        (lambda d: (d / "ai4mat.db").write_bytes(b""), "Error: serve: {db}: database file is empty (run `ai4mat harvest --db {db}` first)\n"),
    ],
)
def test_serve_refuses_a_missing_or_invalid_database(tmp_path, setup, message):
    setup(tmp_path)
    db = tmp_path / "ai4mat.db"
    result = CliRunner().invoke(cli, ["serve", "--db", str(db), "--metadata", str(METADATA_PATH)])
    assert result.exit_code == 1
    assert result.output == message.format(db=db)


def test_serve_refuses_a_missing_metadata_file(tmp_path):
    db = tmp_path / "ai4mat.db"
    build_site_db(db)
    result = CliRunner().invoke(cli, ["serve", "--db", str(db), "--metadata", str(tmp_path / "metadata.yml")])
    assert result.exit_code == 1
    assert result.output == (
        f"Error: serve: {tmp_path / 'metadata.yml'}: metadata file not found "
        "(leave out --metadata to serve the site shipped with ai4mat)\n"
    )


def test_serve_refuses_a_file_of_an_older_schema_and_says_how_to_migrate_it(tmp_path, monkeypatch):
    # Serving opens the file read-only, so it cannot migrate it; the site's queries need the latest schema.
    from .test_store import make_v1_file

    db = tmp_path / "ai4mat.db"
    make_v1_file(db, monkeypatch)
    before = db.read_bytes()
    result = CliRunner().invoke(cli, ["serve", "--db", str(db), "--metadata", str(METADATA_PATH)])
    assert result.exit_code == 1
    assert result.output == (
        f"Error: serve: {db}: schema 1 is older than this ai4mat's ({SCHEMA_VERSION}); "
        f"run `ai4mat harvest --db {db}` once, which migrates the file in place before fetching\n"
    )
    assert db.read_bytes() == before


# ---------------------------------------------------------------- a real server


def fetch(url: str):
    """(status, headers (case-insensitive), body) of a GET."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """`ai4mat serve` running on a free port over a harvested database; yields its base URL and file."""
    db = tmp_path_factory.mktemp("served") / "ai4mat.db"
    build_site_db(db)
    with serving(db) as (_, base, banner):
        assert banner == f"Serving {db} at {base} live (a harvest may write it while it is served; Ctrl-C to stop)\n"
        yield base, db


def test_home_page_lists_the_dataset_and_search_box(site):
    base, _ = site
    status, headers, body = fetch(base)
    assert status == 200
    html = body.decode()
    assert "<h1>ArXiv Daily – AI4MAT</h1>" in html
    assert '<a href="/ai4mat/new_today">New today</a>' in html
    assert '<a href="https://creativecommons.org/publicdomain/zero/1.0/">CC0 1.0 (arXiv metadata)</a>' in html
    assert '<form class="core" action="/-/search" method="get">' in html  # datasette-search-all


def test_new_today_json_with_cors_and_cache(site):
    base, _ = site
    status, headers, body = fetch(base + "ai4mat/new_today.json?_shape=array")
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == "*"
    # Live: a harvest may commit any time, so nothing is cached (immutable serving: an hour).
    assert headers["cache-control"] == "no-cache"
    assert [(r["status"], r["arxiv_id"], r["version"]) for r in json.loads(body)] == [
        ("updated", "2611.00002", 2), ("new", "2611.00004", 1),
    ]


def test_search_json_over_http(site):
    base, _ = site
    # AND is a plain (stop) word and any word may match: operators never error, nor require.
    status, _, body = fetch(base + "ai4mat/search.json?q=perovskite%20AND%20(&_shape=array")
    assert status == 200 and [r["arxiv_id"] for r in json.loads(body)] == ["2611.00002"]
    status, _, body = fetch(base + "ai4mat/search.json?q=perovskite%20(%22&_shape=array")
    assert status == 200
    assert [(r["arxiv_id"], r["title"]) for r in json.loads(body)] == [
        ("2611.00002", "Graph networks screen perovskite catalysts at scale"),
    ]


def test_atom_feed_over_http_parses(site):
    base, _ = site
    status, headers, body = fetch(base + "ai4mat/feed.atom")
    assert status == 200
    feed = feedparser.parse(body)
    assert not feed.bozo
    assert feed.feed.title == "ArXiv Daily – AI4MAT"
    assert [e.id for e in feed.entries][:2] == ["https://arxiv.org/abs/2611.00002v2", "https://arxiv.org/abs/2611.00004v1"]
    assert len(feed.entries) == 5


def test_immutable_serving_caches_and_downloads_the_file_itself(tmp_path):
    db = tmp_path / "ai4mat.db"
    build_site_db(db)
    with serving(db, "--immutable") as (_, base, banner):
        assert banner == f"Serving {db} at {base} immutable (as asked; Ctrl-C to stop)\n"
        status, _, body = fetch(base + "-/databases.json")
        assert [(d["name"], d["is_mutable"]) for d in json.loads(body)] == [("ai4mat", False)]
        status, headers, body = fetch(base + "ai4mat/new_today.json?_shape=array")
        assert (status, headers["cache-control"]) == (200, "max-age=3600")
        status, headers, body = fetch(base + "ai4mat.db")
        assert status == 200
        assert body == db.read_bytes()
        assert headers["Etag"].startswith('"') and len(headers["Etag"]) > 10
        assert headers["content-disposition"] == 'attachment; filename="ai4mat.db"'
    # Untouched: still in rollback journal mode, no -wal or -shm beside it.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ai4mat.db"]
    assert db.read_bytes()[18:20] == b"\x01\x01"


def test_row_pages_of_dotted_and_slashed_ids(site):
    base, _ = site
    for path, title in (
        ("ai4mat/papers/cond-mat~2F0102536.json?_shape=array", "Diffusion models for crystal structure prediction"),
        ("ai4mat/papers/2611~2E00001.json?_shape=array", "Generative transformers for inverse materials design"),
    ):
        status, _, body = fetch(base + path)
        assert status == 200
        assert [row["title"] for row in json.loads(body)] == [title]


# ---------------------------------------------------------------- a real browser


def chromium(binary: str, tmp_path: Path, *args: str) -> str:
    profile = tmp_path / f"profile-{time.monotonic_ns()}"
    result = subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.browser
@pytest.mark.parametrize(
    "page, expected",
    [
        ("", ["<h1>ArXiv Daily – AI4MAT</h1>", '<a href="/ai4mat/new_today">New today</a>', 'id="search-all-q"']),
        ("ai4mat/new_today", ["Graph networks screen perovskite catalysts at scale", 'Crystal &lt;b&gt;diffusion&lt;/b&gt;',
                              '<a href="/ai4mat/papers/2611~2E00004">2611.00004</a>']),
        # What the home page's search box submits.
        ("-/search?q=perovskite", ["Graph networks screen perovskite catalysts at scale"]),
    ],
    ids=["home", "new_today", "search_all"],
)
def test_chromium_renders_the_pages(site, tmp_path, page, expected):
    binary = chromium_binary()
    base, _ = site
    # The virtual time budget lets the page's scripts (search-all fetches results) finish first.
    dom = chromium(binary, tmp_path, "--virtual-time-budget=5000", "--dump-dom", base + page)
    for text in expected:
        assert text in dom
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / f"site-{page.split('?')[0].strip('-/').replace('/', '-') or 'home'}.png"
    shot.unlink(missing_ok=True)
    chromium(binary, tmp_path, "--window-size=1280,1000", "--hide-scrollbars", f"--screenshot={shot}", base + page)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 10_000

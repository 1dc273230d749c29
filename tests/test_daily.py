"""scripts/daily.sh end to end: the fake arXiv API and the "previous release" on local HTTP servers."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from harvest.runner import run_harvest
from harvest.store import writing

from .conftest import rows
from .cycles import the_previous_cycle
from .fake_arxiv import FakeArxiv
from .site_data import FIRST, FOURTH, OLD_STYLE, ROOT, SECOND_V1, SECOND_V2

DAILY = ROOT / "scripts" / "daily.sh"
WORKFLOW = ROOT / ".github" / "workflows" / "daily.yml"
README = "# Test dataset\n\n<!-- ARXIV_PAPERS_START -->\nold\n<!-- ARXIV_PAPERS_END -->\n"


class Release:
    """A local stand-in for the release server: path -> (status, body), where a 3xx body is
    the Location. With `gh_state` set it also serves what tests/fake_gh.py released, as GitHub
    does: /latest/download/<asset> redirects to /download/<tag>/<asset>; drafts are invisible."""

    def __init__(self):
        self.files: dict[str, tuple[int, bytes]] = {}
        self.gh_state: Path | None = None
        release = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def answer(self, send_body: bool):
                status, body = release.lookup(self.path)
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", body.decode())
                    body = b""
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if send_body:
                    self.wfile.write(body)

            def do_GET(self):
                self.answer(True)

            def do_HEAD(self):
                self.answer(False)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def lookup(self, path: str) -> tuple[int, bytes]:
        if path in self.files:
            return self.files[path]
        if self.gh_state is not None and (self.gh_state / "releases.json").exists():
            releases = json.loads((self.gh_state / "releases.json").read_text())
            parts = path.strip("/").split("/")
            if parts[:2] == ["latest", "download"] and len(parts) == 3:
                published = [r for r in releases if not r["draft"] and r.get("latest_at") is not None]
                if published:
                    tag = max(published, key=lambda r: r["latest_at"])["tag"]
                    return 302, self.url(f"/download/{tag}/{parts[2]}").encode()
            if parts[:1] == ["download"] and len(parts) == 3:
                release = next((r for r in releases if r["tag"] == parts[1] and not r["draft"]), None)
                if release is not None and parts[2] in release["assets"]:
                    return 200, (self.gh_state / "files" / parts[1] / parts[2]).read_bytes()
        return 404, b"not found"


@pytest.fixture
def release():
    server = Release()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture
def workdir(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"query": 'all:"materials discovery"', "delay_seconds": 0}))
    (tmp_path / "README.md").write_text(README)
    return tmp_path


def daily(workdir: Path, fake: FakeArxiv, previous_url: str | None = None, **extra_env: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("AI4MAT_PREVIOUS_DB_URL", "AI4MAT_DB", "AI4MAT_START_EMPTY")}
    env["GITHUB_OUTPUT"] = str(workdir.parent / f"{workdir.name}.github_output")
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    env["ARXIV_API_URL"] = fake.url
    env["AI4MAT_DOWNLOAD_RETRIES"] = "0"
    if previous_url is not None:
        env["AI4MAT_PREVIOUS_DB_URL"] = previous_url
    # The weekly recompute of the related lists runs only where a test asks for it.
    env["AI4MAT_RELATE_WEEKDAY"] = str(not_today())
    env.update(extra_env)
    return subprocess.run(["bash", str(DAILY)], cwd=workdir, env=env, capture_output=True, text=True, timeout=120)


def today() -> int:
    """Today's day of the week as daily.sh reads it (UTC, 1 = Monday ... 7 = Sunday)."""
    return datetime.now(timezone.utc).isoweekday()


def not_today() -> int:
    return today() % 7 + 1


def test_first_run_without_a_previous_database_starts_empty(workdir, fake_arxiv):
    fake_arxiv.papers = [FIRST, SECOND_V1, OLD_STYLE]
    result = daily(workdir, fake_arxiv)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "harvest: 3 new, 0 updated, 0 unchanged (1 request)\nreadme: README.md updated\n"
    assert result.stderr.splitlines()[0] == "daily: AI4MAT_PREVIOUS_DB_URL is unset and there is no ai4mat.db: starting an empty one"
    db = workdir / "ai4mat.db"
    assert [(r["id"], r["status"], r["new"]) for r in rows(db, "select * from runs")] == [(1, "ok", 3)]
    assert "## New Papers (3)" in (workdir / "README.md").read_text()
    # Today's papers are embedded for search (all-MiniLM-L6-v2) before the file is checksummed.
    assert "embed: 3 papers embedded with all-MiniLM-L6-v2; 0 still without" in result.stderr.splitlines()
    assert len(rows(db, "select arxiv_id from paper_embeddings_minilm")) == 3
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    assert (workdir / "ai4mat.db.sha256").read_text() == f"{digest}  ai4mat.db\n"
    assert result.stderr.splitlines()[-2:] == ["daily: smoke check passed", f"daily: {digest}  ai4mat.db"]
    assert (workdir.parent / f"{workdir.name}.github_output").read_text() == "harvest_failed=false\n"


def test_a_file_left_in_wal_mode_by_live_serving_is_released_in_rollback_mode(workdir, fake_arxiv):
    fake_arxiv.papers = [FIRST]
    assert daily(workdir, fake_arxiv).returncode == 0
    db = workdir / "ai4mat.db"
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA journal_mode = WAL").fetchone() == ("wal",)
    conn.close()
    fake_arxiv.papers = [FIRST, SECOND_V1]
    result = daily(workdir, fake_arxiv)
    assert result.returncode == 0, result.stderr
    assert db.read_bytes()[18:20] == b"\x01\x01"  # header: rollback journal, readable anywhere
    assert not (workdir / "ai4mat.db-wal").exists()
    assert [(r["id"], r["new"]) for r in rows(db, "select * from runs")] == [(1, 1), (2, 1)]
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    assert (workdir / "ai4mat.db.sha256").read_text() == f"{digest}  ai4mat.db\n"


def test_papers_tagged_by_an_older_vocabulary_are_retagged_before_the_harvest(workdir, fake_arxiv):
    fake_arxiv.papers = [FIRST, SECOND_V1]
    assert daily(workdir, fake_arxiv).returncode == 0
    db = workdir / "ai4mat.db"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE paper_enrichment SET vocabulary_version = 'old'")
        conn.execute("UPDATE paper_tags SET vocabulary_version = 'old'")
    conn.close()
    fake_arxiv.papers = [FIRST, SECOND_V1, FOURTH]
    result = daily(workdir, fake_arxiv)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "harvest: 1 new, 0 updated, 2 unchanged (1 request)\nreadme: README.md updated\n"
    assert "enrich: 2 papers were tagged with another vocabulary (or none)" in result.stderr.splitlines()
    version = json.loads((ROOT / "harvest" / "data" / "vocabulary.json").read_text())["version"]
    assert rows(db, "select vocabulary_version, count(*) n from paper_enrichment group by 1") == [
        {"vocabulary_version": version, "n": 3}
    ]
    assert {r["vocabulary_version"] for r in rows(db, "select vocabulary_version from paper_tags")} == {version}
    # The next day nothing is stale: nothing is rewritten.
    result = daily(workdir, fake_arxiv)
    assert f"enrich: every paper is tagged with vocabulary {version}; nothing to do" in result.stderr.splitlines()


def test_related_lists_are_recomputed_in_full_on_the_weekly_day_only(workdir, fake_arxiv):
    fake_arxiv.papers = [FIRST, SECOND_V1, OLD_STYLE, FOURTH]
    assert daily(workdir, fake_arxiv).returncode == 0
    db = workdir / "ai4mat.db"
    exact = rows(db, "select * from related order by arxiv_id, rank")
    assert len(exact) == 4 * 3
    # Lists the daily updates left behind: one paper's list lost, the others' scores stale.
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM related WHERE arxiv_id = ?", [FIRST["arxiv_id"]])
        conn.execute("UPDATE related SET score = 0.5")
    conn.close()
    drifted = rows(db, "select * from related order by arxiv_id, rank")
    result = daily(workdir, fake_arxiv)
    assert result.returncode == 0, result.stderr
    assert not any(line.startswith("relate:") for line in result.stderr.splitlines())
    assert rows(db, "select * from related order by arxiv_id, rank") == drifted
    weekday = today()  # read once: the run and the expected line name the same day, even at midnight
    result = daily(workdir, fake_arxiv, AI4MAT_RELATE_WEEKDAY=str(weekday))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "harvest: 0 new, 0 updated, 4 unchanged (1 request)", result.stderr
    lines = result.stderr.splitlines()
    start = lines.index(f"daily: recomputing every paper's related list (weekly, on day {weekday})")
    assert lines[start + 1] == "relate: 0 papers embedded, related papers of 4 papers recomputed", result.stderr
    assert rows(db, "select * from related order by arxiv_id, rank") == exact


@pytest.mark.parametrize("weekday", ["8", "sunday", "-1"])
def test_a_weekday_that_is_not_one_stops_the_job_before_harvesting(workdir, fake_arxiv, weekday):
    fake_arxiv.papers = [FIRST]
    result = daily(workdir, fake_arxiv, AI4MAT_RELATE_WEEKDAY=weekday)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        "daily: AI4MAT_RELATE_WEEKDAY must be a day of the week from 1 (Monday) to 7 (Sunday), "
        f"or 0 for never; got '{weekday}'\n"
    )
    assert not (workdir / "ai4mat.db").exists()
    assert fake_arxiv.requests == []


def test_next_run_continues_the_previous_release(workdir, fake_arxiv, release, tmp_path_factory, client_for):
    # Yesterday's database, written by the harvester, is "released".
    yesterday = tmp_path_factory.mktemp("yesterday") / "ai4mat.db"
    fake_arxiv.papers = [FIRST, SECOND_V1, OLD_STYLE]
    with writing(yesterday) as db:
        run_harvest(db, client_for(fake_arxiv), 'all:"materials discovery"')
        db.execute("UPDATE runs SET cycle = ?", [the_previous_cycle()])  # yesterday's announcement
    # "latest" redirects to one release; the checksum is read from that release, not from
    # latest again (here latest's own checksum is another release's).
    release.files["/latest/ai4mat.db"] = (302, release.url("/data-1/ai4mat.db").encode())
    release.files["/data-1/ai4mat.db"] = (200, yesterday.read_bytes())
    release.files["/data-1/ai4mat.db.sha256"] = (200, f"{sha256(yesterday)}  ai4mat.db\n".encode())
    release.files["/latest/ai4mat.db.sha256"] = (200, f"{'0' * 64}  ai4mat.db\n".encode())

    fake_arxiv.papers = [FIRST, SECOND_V2, OLD_STYLE, FOURTH]
    result = daily(workdir, fake_arxiv, release.url("/latest/ai4mat.db"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "harvest: 1 new, 1 updated, 2 unchanged (1 request)\nreadme: README.md updated\n"
    db = workdir / "ai4mat.db"
    assert [(r["id"], r["status"], r["new"], r["updated"]) for r in rows(db, "select * from runs")] == [
        (1, "ok", 3, 0), (2, "ok", 1, 1),
    ]
    assert "## New Papers (2)" in (workdir / "README.md").read_text()
    assert not (workdir / "ai4mat.db.download").exists()
    assert f"daily: previous database verified: sha256 {sha256(yesterday)}, integrity ok" in result.stderr.splitlines()


def test_a_failed_download_stops_the_job_before_harvesting(workdir, fake_arxiv, release):
    release.files["/latest/ai4mat.db"] = (500, b"boom")
    result = daily(workdir, fake_arxiv, release.url("/latest/ai4mat.db"))
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        "daily: downloading the previous database failed with HTTP 500; stopping rather than starting over"
    )
    assert sorted(p.name for p in workdir.iterdir()) == ["README.md", "config.json"]
    assert fake_arxiv.requests == []


def test_first_release_with_arxiv_down_starts_empty_and_still_publishes(workdir, fake_arxiv, release):
    # No release yet (HTTP 404), and the harvest fails: the failure is recorded and published.
    fake_arxiv.faults = {1: "error_feed"}
    result = daily(workdir, fake_arxiv, release.url("/latest/ai4mat.db"), AI4MAT_START_EMPTY="1")
    assert result.returncode == 0, result.stderr
    assert "daily: no previous database published (HTTP 404) and AI4MAT_START_EMPTY=1: starting an empty one" in result.stderr.splitlines()
    assert "Error: harvest failed: arXiv API error (HTTP 400): incorrect id format for abc" in result.stderr
    assert "::warning title=harvest failed::see the runs table of the published dataset" in result.stdout
    assert (workdir.parent / f"{workdir.name}.github_output").read_text() == "harvest_failed=true\n"
    assert [(r["status"], r["error"]) for r in rows(workdir / "ai4mat.db", "select * from runs")] == [
        ("failed", "arXiv API error (HTTP 400): incorrect id format for abc"),
    ]
    assert "No new papers today" in (workdir / "README.md").read_text()
    assert (workdir / "ai4mat.db.sha256").exists()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def released_db(tmp_path_factory, client_for, fake_arxiv) -> Path:
    path = tmp_path_factory.mktemp("released") / "ai4mat.db"
    fake_arxiv.papers = [FIRST, SECOND_V1, OLD_STYLE]
    with writing(path) as db:
        run_harvest(db, client_for(fake_arxiv), 'all:"materials discovery"')
    fake_arxiv.requests.clear()
    return path


def local_db_kept(workdir: Path, before: bytes) -> None:
    """A stopped job leaves the folder as it was: the local file, and no download beside it."""
    assert sorted(p.name for p in workdir.iterdir()) == ["README.md", "ai4mat.db", "config.json"]
    assert (workdir / "ai4mat.db").read_bytes() == before


@pytest.mark.parametrize("where", ["no-release", "release-without-asset"])
def test_a_missing_previous_database_stops_unless_starting_empty_is_chosen(workdir, fake_arxiv, release, where):
    """An HTTP 404 once deleted the local file and started empty: a release without the asset
    made the next release hold only the newest results, as "latest"."""
    if where == "release-without-asset":
        release.files["/latest/ai4mat.db"] = (302, release.url("/data-1/ai4mat.db").encode())
    url = release.url("/data-1/ai4mat.db") if where == "release-without-asset" else release.url("/latest/ai4mat.db")
    (workdir / "ai4mat.db").write_bytes(b"local copy")
    result = daily(workdir, fake_arxiv, release.url("/latest/ai4mat.db"))
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        f"daily: no previous database at {url} (HTTP 404); stopping rather than starting over. "
        "On the very first run, set AI4MAT_START_EMPTY=1 (workflow input start_empty)"
    )
    local_db_kept(workdir, b"local copy")
    assert fake_arxiv.requests == []

    result = daily(workdir, fake_arxiv, release.url("/latest/ai4mat.db"), AI4MAT_START_EMPTY="1")
    assert result.returncode == 0, result.stderr
    assert [(r["id"], r["status"]) for r in rows(workdir / "ai4mat.db", "select * from runs")] == [(1, "ok")]


CHECKSUMS = {
    "wrong": (200, f"{'0' * 64}  ai4mat.db\n".encode()),
    "empty": (200, b""),
    "missing": (404, b"not found"),
    "server-error": (500, b"boom"),
}


@pytest.mark.parametrize("checksum", CHECKSUMS.values(), ids=CHECKSUMS.keys())
def test_a_download_that_does_not_match_its_checksum_stops(workdir, fake_arxiv, release, tmp_path_factory, client_for, checksum):
    """The downloaded file was used without checking the published .sha256."""
    previous = released_db(tmp_path_factory, client_for, fake_arxiv)
    release.files["/latest/ai4mat.db"] = (200, previous.read_bytes())
    release.files["/latest/ai4mat.db.sha256"] = checksum
    (workdir / "ai4mat.db").write_bytes(b"local copy")
    result = daily(workdir, fake_arxiv, release.url("/latest/ai4mat.db"))
    assert result.returncode == 1
    status, _ = checksum
    expected = (
        f"daily: the previous database does not match its published checksum (sha256 {sha256(previous)}, "
        f"published {'0' * 64 if checksum[1] else 'nothing'}); stopping rather than building on a damaged file"
        if status == 200 else
        f"daily: no checksum published beside the previous database ({release.url('/latest/ai4mat.db.sha256')}: "
        f"HTTP {status}); stopping rather than using an unchecked file"
    )
    assert result.stderr.splitlines()[-1] == expected
    local_db_kept(workdir, b"local copy")
    assert fake_arxiv.requests == []


def test_a_damaged_download_with_a_matching_checksum_stops(workdir, fake_arxiv, release, tmp_path_factory, client_for):
    """A file damaged before its checksum was written (or not a database at all) fails PRAGMA integrity_check."""
    previous = released_db(tmp_path_factory, client_for, fake_arxiv)
    damaged = bytearray(previous.read_bytes())
    page_size = int.from_bytes(damaged[16:18], "big")
    for page in range(2, len(damaged) // page_size):  # scribble over the start of every page but the first
        damaged[page * page_size : page * page_size + 16] = b"\xa5" * 16
    release.files["/latest/ai4mat.db"] = (200, bytes(damaged))
    release.files["/latest/ai4mat.db.sha256"] = (200, f"{hashlib.sha256(damaged).hexdigest()}  ai4mat.db\n".encode())
    (workdir / "ai4mat.db").write_bytes(b"local copy")
    result = daily(workdir, fake_arxiv, release.url("/latest/ai4mat.db"))
    assert result.returncode == 1
    last = result.stderr.splitlines()[-1]
    assert last.startswith("daily: the previous database fails PRAGMA integrity_check (") and last.endswith(
        "); stopping rather than building on a damaged file"
    ), last
    assert "ok)" not in last
    local_db_kept(workdir, b"local copy")
    assert fake_arxiv.requests == []


def release_step() -> str:
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["daily"]["steps"]
    [step] = [s for s in steps if s.get("name", "").startswith("Release the database")]
    return step["run"]


def test_same_day_reruns_switch_latest_atomically(workdir, fake_arxiv, release, tmp_path):
    """The workflow's own release step, run three times in one day against a stand-in for gh and
    GitHub's downloads. A same-day rerun used `gh release upload --clobber`, replacing the two
    assets one at a time, so latest/download could answer 404 or a file and a checksum that
    disagree. At every change, what latest/download serves must be a complete, matching pair."""
    state = tmp_path / "gh-state"
    release.gh_state = state
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "gh").write_text(f'#!/bin/sh\nexec "{sys.executable}" "{ROOT / "tests" / "fake_gh.py"}" "$@"\n')
    (bin_dir / "gh").chmod(0o755)
    (workdir / "scripts").symlink_to(ROOT / "scripts")
    env = {**os.environ, "PATH": f"{bin_dir}:{Path(sys.executable).parent}:{os.environ['PATH']}", "FAKE_GH_STATE": str(state)}
    env.pop("AI4MAT_DB", None)
    latest_url = release.url("/latest/download/ai4mat.db")
    papers = [[FIRST, SECOND_V1], [FIRST, SECOND_V2, OLD_STYLE], [FIRST, SECOND_V2, OLD_STYLE, FOURTH]]
    for day_run, served in enumerate(papers, 1):
        fake_arxiv.papers = served
        result = daily(workdir, fake_arxiv, latest_url, **({"AI4MAT_START_EMPTY": "1"} if day_run == 1 else {}))
        assert result.returncode == 0, result.stderr
        step = subprocess.run(["bash", "-e", "-c", release_step()], cwd=workdir, env=env, capture_output=True, text=True, timeout=60)
        assert step.returncode == 0, step.stderr
    served_log = [json.loads(line) for line in (state / "served.jsonl").read_text().splitlines()]
    assert served_log[0] == {"tag": None, "db": None, "sha": None}
    broken = [s for s in served_log if s["tag"] is not None and (s["db"] is None or s["sha"] != f"{s['db']}  ai4mat.db\n")]
    assert broken == []
    releases = json.loads((state / "releases.json").read_text())
    assert [r["draft"] for r in releases] == [False, False, False]
    assert len({r["tag"] for r in releases}) == 3
    # Each run continued the one before: three runs, four papers, two versions of the second.
    db = workdir / "ai4mat.db"
    assert [(r["id"], r["new"], r["updated"]) for r in rows(db, "select * from runs")] == [(1, 2, 0), (2, 1, 1), (3, 1, 0)]
    assert served_log[-1] == {"tag": releases[-1]["tag"], "db": sha256(db), "sha": (workdir / "ai4mat.db.sha256").read_text()}
    assert [s["tag"] for s in served_log if s["tag"]][-1] == releases[-1]["tag"]


def test_the_smoke_check_names_each_page_that_fails_and_exits_1(tmp_path):
    """The daily job's smoke check loads the site once and asks each page; a page that breaks
    (here the Atom feed's SQL) is named with its status, and the job stops before releasing."""
    from harvest import smoke
    from harvest.site_config import load_rendered_metadata
    from harvest.site_files import site_files

    from .site_data import build_site_db

    db = tmp_path / "ai4mat.db"
    build_site_db(db)
    site = site_files()
    metadata = load_rendered_metadata(site.metadata, None)
    assert asyncio.run(smoke.failures(db, metadata, site.plugins, site.templates)) == []
    metadata["databases"]["ai4mat"]["queries"]["feed"]["sql"] = "select title from nowhere"
    assert asyncio.run(smoke.failures(db, metadata, site.plugins, site.templates)) == ["/ai4mat/feed.atom answered HTTP 400"]
    missing = subprocess.run([sys.executable, "-m", "harvest.smoke", "--db", str(tmp_path / "none.db")], cwd=tmp_path, capture_output=True, text=True)
    assert (missing.returncode, missing.stdout, missing.stderr) == (1, "", f"smoke: {tmp_path / 'none.db'}: no such file\n")

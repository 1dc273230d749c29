"""scripts/daily.sh end to end: the fake arXiv API and the "previous release" on local HTTP servers."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from harvest.runner import run_harvest
from harvest.store import writing

from .conftest import rows
from .fake_arxiv import FakeArxiv
from .site_data import FIRST, FOURTH, OLD_STYLE, ROOT, SECOND_V1, SECOND_V2

DAILY = ROOT / "scripts" / "daily.sh"
README = "# Test dataset\n\n<!-- ARXIV_PAPERS_START -->\nold\n<!-- ARXIV_PAPERS_END -->\n"


class Release:
    """A local stand-in for the release server: path -> (status, body)."""

    def __init__(self):
        self.files: dict[str, tuple[int, bytes]] = {}
        release = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                status, body = release.files.get(self.path, (404, b"not found"))
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"


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


def daily(workdir: Path, fake: FakeArxiv, previous_url: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("AI4MAT_PREVIOUS_DB_URL", "AI4MAT_DB")}
    env["GITHUB_OUTPUT"] = str(workdir.parent / f"{workdir.name}.github_output")
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    env["ARXIV_API_URL"] = fake.url
    env["AI4MAT_DOWNLOAD_RETRIES"] = "0"
    if previous_url is not None:
        env["AI4MAT_PREVIOUS_DB_URL"] = previous_url
    return subprocess.run(["bash", str(DAILY)], cwd=workdir, env=env, capture_output=True, text=True, timeout=120)


def test_first_run_without_a_previous_database_starts_empty(workdir, fake_arxiv):
    fake_arxiv.papers = [FIRST, SECOND_V1, OLD_STYLE]
    result = daily(workdir, fake_arxiv)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "harvest: 3 new, 0 updated, 0 unchanged (1 request)\nreadme: README.md updated\n"
    assert result.stderr.splitlines()[0] == "daily: AI4MAT_PREVIOUS_DB_URL is unset and there is no ai4mat.db: starting an empty one"
    db = workdir / "ai4mat.db"
    assert [(r["id"], r["status"], r["new"]) for r in rows(db, "select * from runs")] == [(1, "ok", 3)]
    assert "## New Papers (3)" in (workdir / "README.md").read_text()
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    assert (workdir / "ai4mat.db.sha256").read_text() == f"{digest}  ai4mat.db\n"
    assert result.stderr.splitlines()[-2:] == ["daily: smoke check passed", f"daily: {digest}  ai4mat.db"]
    assert (workdir.parent / f"{workdir.name}.github_output").read_text() == "harvest_failed=false\n"


def test_next_run_continues_the_previous_release(workdir, fake_arxiv, release, tmp_path_factory, client_for):
    # Yesterday's database, written by the harvester, is "released".
    yesterday = tmp_path_factory.mktemp("yesterday") / "ai4mat.db"
    fake_arxiv.papers = [FIRST, SECOND_V1, OLD_STYLE]
    with writing(yesterday) as db:
        run_harvest(db, client_for(fake_arxiv), 'all:"materials discovery"')
    release.files["/latest/ai4mat.db"] = (200, yesterday.read_bytes())

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
    result = daily(workdir, fake_arxiv, release.url("/latest/ai4mat.db"))
    assert result.returncode == 0, result.stderr
    assert "daily: no previous database published yet (HTTP 404): starting an empty one" in result.stderr.splitlines()
    assert "Error: harvest failed: arXiv API error (HTTP 400): incorrect id format for abc" in result.stderr
    assert "::warning title=harvest failed::see the runs table of the published dataset" in result.stdout
    assert (workdir.parent / f"{workdir.name}.github_output").read_text() == "harvest_failed=true\n"
    assert [(r["status"], r["error"]) for r in rows(workdir / "ai4mat.db", "select * from runs")] == [
        ("failed", "arXiv API error (HTTP 400): incorrect id format for abc"),
    ]
    assert "No new papers today" in (workdir / "README.md").read_text()
    assert (workdir / "ai4mat.db.sha256").exists()

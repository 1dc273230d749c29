"""A small dataset built by the real harvester from the fake arXiv API, for the site's tests.

Run 1 sees three papers (one old-style id), run 2 sees a new paper and a new version of
another, run 3 fails; each run is the only one of its arXiv announcement cycle. Titles are literal so tests can assert exact rows.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from harvest.fetch import ArxivClient
from harvest.runner import RunFailed, run_harvest
from harvest.store import writing

from .cycles import one_run_per_cycle
from .fake_arxiv import FakeArxiv, make_paper

ROOT = Path(__file__).resolve().parent.parent
METADATA_PATH = ROOT / "metadata.yml"
PLUGINS_DIR = ROOT / "plugins"
QUERY = 'all:"materials discovery"'

OLD_STYLE = make_paper(
    3, arxiv_id="cond-mat/0102536", title="Diffusion models for crystal structure prediction",
    summary="Score-based diffusion generates stable crystals.", authors=["Jane Doe", "John Roe"],
    categories=["cond-mat.mtrl-sci", "physics.comp-ph"], published="2001-02-28T12:00:00Z",
    updated="2001-02-28T12:00:00Z",
)
FIRST = make_paper(
    1, title="Generative transformers for inverse materials design", authors=["Jane Doe", "Ann Lee"],
    summary="A transformer proposes alloys; diffusion is not used.", updated="2026-11-20T08:00:00Z",
)
SECOND_V1 = make_paper(
    2, title="Graph networks screen perovskite catalysts", authors=["Bo Chen"],
    summary="Screening perovskites with graph neural networks.", updated="2026-11-19T09:30:00Z",
    primary_category="cs.LG", categories=["cs.LG", "cond-mat.mtrl-sci"],
)
SECOND_V2 = {**SECOND_V1, "version": 2, "title": "Graph networks screen perovskite catalysts at scale",
             "updated": "2026-11-21T07:00:00Z"}
FOURTH = make_paper(
    4, title='Crystal <b>diffusion</b> & "quoted" alloys', authors=["Ann Lee"],
    summary="Diffusion models meet <script>alert(1)</script> battery materials.",
    updated="2026-11-21T06:00:00Z", published="2026-10-02T06:00:00Z",
)


def build_site_db(path: Path) -> None:
    """Write the three runs into `path` with the real harvester."""
    client = lambda fake: ArxivClient(fake.url, delay_seconds=0, max_retries=0, timeout=(2.0, 2.0), sleep=lambda s: None)
    with FakeArxiv() as fake:
        fake.papers = [FIRST, SECOND_V1, OLD_STYLE]
        with writing(path) as db:
            run_harvest(db, client(fake), QUERY)
        fake.papers = [FIRST, SECOND_V2, OLD_STYLE, FOURTH]
        with writing(path) as db:
            run_harvest(db, client(fake), QUERY)
        fake.faults = {len(fake.requests) + 1: "error_feed"}
        with writing(path) as db:
            try:
                run_harvest(db, client(fake), QUERY)
            except RunFailed:
                pass
            else:
                raise AssertionError("run 3 should have failed")
            # Three daily runs, as on three days: each the only run of its announcement cycle.
            one_run_per_cycle(db)


def load_metadata() -> dict:
    """metadata.yml as `ai4mat serve` serves it: rendered for the repository's config.json."""
    from harvest.config import load_config
    from harvest.site_config import load_rendered_metadata

    return load_rendered_metadata(METADATA_PATH, load_config(ROOT / "config.json"))


def load_plugin():
    """The site plugin module, loaded from plugins/ the way Datasette does."""
    spec = importlib.util.spec_from_file_location("ai4mat_search_under_test", PLUGINS_DIR / "ai4mat_search.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving(db_path: Path, *options: str, startup_seconds: float = 30) -> Iterator[tuple[subprocess.Popen, str, str]]:
    """`ai4mat serve` over `db_path` (with `options`) on a free port, as a real process, for the block.

    Yields (process, base URL, the first line it printed) once Datasette answers; stops it after.
    Its output goes to files, not pipes: a pipe nobody reads fills up under load and stalls it.
    """
    port = free_port()
    base = f"http://127.0.0.1:{port}/"
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "harvest", "serve", "--db", str(db_path), "--port", str(port), *options],
            cwd=ROOT, stdout=out, stderr=err, text=True,
        )
        try:
            deadline = time.monotonic() + startup_seconds
            while True:
                try:
                    with urllib.request.urlopen(base + "-/versions.json", timeout=2) as response:
                        if response.status == 200:
                            break
                except OSError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    err.seek(0)
                    raise AssertionError(f"datasette did not start: {err.read() if process.poll() is not None else 'timeout'}")
                time.sleep(0.1)
            out.seek(0)
            yield process, base, out.readline()
        finally:
            stop(process)


def chromium_binary() -> str:
    """Debian's chromium for the browser tests: skipped where it is missing, unless in CI."""
    binary = shutil.which("chromium")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed, and CI is set: .ci/run installs it (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install -y chromium); the browser tests need it")
    return binary


def stop(process: subprocess.Popen) -> None:
    """Terminate a server process, killing it if it has not exited 10 s later."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()

"""Crash safety and concurrency, with real `python -m harvest harvest` processes.

SIGKILL lands at 30 seeded-random moments over multi-page runs that insert, update and re-index
(a third each in start-up, fetching and the store phase). After each kill the file must pass
SQLite's integrity check and the FTS5 integrity-check, and hold either exactly what it held
before the killed run or everything that run was served (never a part of it). The run after
the last kill completes and stores everything. Also: 10 kills during a backfill (whole windows
or nothing), a writer killed with a hot journal (readme and serve refuse the torn file, the
next harvest rolls it back), Ctrl-C and SIGTERM mid-fetch, and two harvests started together on
one file (one proceeds, the other stops at once with a clear line; the file is sound).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harvest.store import INTERRUPTED, INTERRUPTED_BY_USER

from .dumps import PAPER_TABLES, dump, integrity, runs
from .fake_arxiv import FakeArxiv, make_paper

REPO = Path(__file__).resolve().parent.parent
KILLS = 30
SEED = 20261122


def served(kill: int) -> list[dict]:
    """What the fake serves for the run of kill number `kill`: the set grows, and every third
    kill a fifth of the papers get a new version (so runs insert, update and re-index)."""
    papers = []
    for n in range(1, 301 + 10 * kill):
        version = 1 + (kill // 3 if n % 5 == 0 else 0)
        papers.append(make_paper(n, version=version, title=f"Generative model {n} at version {version}"))
    return papers


def harvest_process(db_path: Path, config_path: Path, fake: FakeArxiv) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "harvest", "harvest", "--db", str(db_path), "--config", str(config_path),
         "--api-url", fake.url, "--delay", "0"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def write_config(folder: Path, page_size: int = 50) -> Path:
    path = folder / "config.json"
    path.write_text(json.dumps({"query": "q", "delay_seconds": 0, "page_size": page_size}))
    return path


def snapshot_copy(db_path: Path, scratch: Path) -> Path | None:
    """Copy the file and any journal a kill left, so checking (which rolls the journal back)
    does not do the next harvest's recovery for it."""
    if scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir()
    if not db_path.exists():
        return None
    for suffix in ("", "-journal"):
        source = Path(f"{db_path}{suffix}")
        if source.exists():
            shutil.copyfile(source, scratch / f"copy.db{suffix}")
    return scratch / "copy.db"


def current_papers(path: Path) -> list[tuple]:
    conn = sqlite3.connect(str(path))
    try:
        return conn.execute("SELECT arxiv_id, version, title FROM papers ORDER BY arxiv_id").fetchall()
    finally:
        conn.close()


def expected_papers(papers: list[dict]) -> list[tuple]:
    return sorted((p["arxiv_id"], p["version"], p["title"]) for p in papers)


def test_sigkill_at_30_random_moments_loses_and_corrupts_nothing(tmp_path):
    db_path, config_path = tmp_path / "ai4mat.db", write_config(tmp_path)
    rng = random.Random(SEED)
    with FakeArxiv() as fake:
        # Calibrate on a scratch file: how long start-up, each page and the store phase take.
        fake.papers = served(KILLS // 2)
        scratch_db = tmp_path / "calibration.db"
        for _ in range(2):
            fake.requests.clear()
            began = time.monotonic()
            process = harvest_process(scratch_db, config_path, fake)
            assert process.wait(timeout=60) == 0, process.stderr.read()
            process.stdout.close(), process.stderr.close()
            ended = time.monotonic() - began
            first_page, last_page = fake.requests[0].at - began, fake.requests[-1].at - began
        page_gap = (last_page - first_page) / (len(fake.requests) - 1)
        # A third of the kills in each phase: start-up (imports, opening the file), fetching
        # (after a random page), storing (after the last page: parse, one transaction, commit).
        # Moments are counted from what the run has done, so they land however loaded the machine is.
        plans = [("start-up", None, rng.uniform(0, first_page)) for _ in range(KILLS // 3)]
        plans += [("fetch", rng.random(), rng.uniform(0, page_gap)) for _ in range(KILLS // 3)]
        plans += [("store", 1.0, rng.uniform(0, ended - last_page)) for _ in range(KILLS - 2 * (KILLS // 3))]
        rng.shuffle(plans)

        outcomes = {"before its run began": 0, "mid-run, nothing stored": 0, "after commit": 0, "finished first": 0}
        hot_journals = 0
        for kill, (phase, after_page, moment) in enumerate(plans):
            fake.papers = served(kill)
            before = current_papers(db_path) if db_path.exists() and db_path.stat().st_size else []
            runs_before = len(runs(db_path)) if before else None
            asked_before = len(fake.requests)
            pages = -(-len(fake.papers) // 50)
            process = harvest_process(db_path, config_path, fake)
            if after_page is not None:
                target = asked_before + max(1, round(after_page * pages))
                deadline = time.monotonic() + 30
                while len(fake.requests) < target and process.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.002)
            time.sleep(moment)
            process.send_signal(signal.SIGKILL)
            code = process.wait(timeout=60)
            process.stdout.close(), process.stderr.close()
            moment = f"{phase} +{moment:.3f} s"

            copy = snapshot_copy(db_path, tmp_path / "check")
            if copy is None or copy.stat().st_size == 0:
                outcomes["before its run began"] += 1  # the first run died before SQLite wrote a page
                continue
            hot_journals += Path(f"{copy}-journal").exists()
            assert integrity(copy) == ("ok", "ok"), f"kill {kill}: {moment}"
            papers_now = current_papers(copy)
            recorded = runs(copy)
            statuses = [run["status"] for run in recorded]
            assert set(statuses[:-1]) <= {"ok", "failed"}, statuses
            if papers_now == before and (not recorded or recorded[-1]["status"] != "ok" or len(recorded) == runs_before):
                outcomes["before its run began" if len(recorded) == (runs_before or 0) else "mid-run, nothing stored"] += 1
            else:
                # The only other state allowed: the killed run's whole set is stored and recorded ok.
                assert papers_now == expected_papers(fake.papers), f"kill {kill}: {moment} left a partial run"
                assert recorded[-1]["status"] == "ok" and recorded[-1]["fetched"] == len(fake.papers)
                outcomes["finished first" if code == 0 else "after commit"] += 1

        # The run after the last kill stores everything and closes the interrupted runs.
        fake.papers = served(KILLS)
        process = harvest_process(db_path, config_path, fake)
        stdout, stderr = process.communicate(timeout=60)
        assert (process.returncode, stderr) == (0, "")
        assert stdout.startswith("harvest: ")
    assert integrity(db_path) == ("ok", "ok")
    assert current_papers(db_path) == expected_papers(served(KILLS))
    recorded = runs(db_path)
    assert recorded[-1]["status"] == "ok"
    assert {run["status"] for run in recorded} == {"ok", "failed"} or {run["status"] for run in recorded} == {"ok"}
    assert {run["error"] for run in recorded if run["status"] == "failed"} <= {INTERRUPTED}
    conn = sqlite3.connect(str(db_path))
    try:
        # Every current version has its versions row, and search finds the latest titles.
        assert conn.execute(
            "SELECT count(*) FROM papers p LEFT JOIN versions v ON (v.arxiv_id, v.version) = (p.arxiv_id, p.version) WHERE v.run_id IS NULL"
        ).fetchone() == (0,)
        hits = conn.execute(
            "SELECT p.arxiv_id FROM papers_fts JOIN papers p ON p.rowid = papers_fts.rowid "
            "WHERE papers_fts MATCH '\"version 11\"' ORDER BY p.arxiv_id"
        ).fetchall()
        assert [row[0] for row in hits] == [f"2611.{n:05d}" for n in range(5, 601, 5)]
    finally:
        conn.close()
    assert not Path(f"{db_path}-journal").exists()
    landed = KILLS - outcomes["finished first"]
    assert landed >= KILLS - 5, outcomes
    print(f"\n{KILLS} kills: {outcomes}; {hot_journals} left a hot journal")


# ------------------------------------------------------------------ two writers at once


def test_two_harvests_at_once_one_proceeds_one_refuses(tmp_path):
    db_path, config_path = tmp_path / "ai4mat.db", write_config(tmp_path, page_size=10)
    with FakeArxiv() as fake:
        fake.papers = [make_paper(n) for n in range(1, 31)]
        fake.faults = {1: "hold"}  # the winner's first page waits until the loser has given up
        first, second = harvest_process(db_path, config_path, fake), harvest_process(db_path, config_path, fake)
        deadline = time.monotonic() + 30
        while first.poll() is None and second.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        fake.release.set()
        results = sorted((p.wait(timeout=60), p.stdout.read(), p.stderr.read()) for p in (first, second))
        for process in (first, second):
            process.stdout.close(), process.stderr.close()
        assert results == [
            (0, "harvest: 30 new, 0 updated, 0 unchanged (3 requests)\n", ""),
            (1, "", f"Error: harvest failed: {db_path}: another ai4mat run is writing to this file; wait for it to finish\n"),
        ]
        # The refused run asked arXiv for nothing and recorded nothing.
        assert len(fake.requests) == 3
    assert integrity(db_path) == ("ok", "ok")
    assert [(run["id"], run["status"], run["new"]) for run in runs(db_path)] == [(1, "ok", 30)]


def test_harvest_refused_while_another_writes_then_proceeds(tmp_path):
    """The lock is held for the whole run, fetch included, and released when the writer exits."""
    db_path, config_path = tmp_path / "ai4mat.db", write_config(tmp_path, page_size=10)
    with FakeArxiv() as fake:
        fake.papers = [make_paper(n) for n in range(1, 31)]
        fake.faults = {1: "hold"}
        writer = harvest_process(db_path, config_path, fake)
        deadline = time.monotonic() + 10
        while not fake.requests and time.monotonic() < deadline:
            time.sleep(0.02)
        before = dump(db_path, PAPER_TABLES)
        refused = subprocess.run(
            [sys.executable, "-m", "harvest", "harvest", "--db", str(db_path), "--config", str(config_path),
             "--api-url", fake.url, "--delay", "0"],
            cwd=REPO, capture_output=True, text=True, timeout=60,
        )
        assert (refused.returncode, refused.stderr) == (
            1, f"Error: harvest failed: {db_path}: another ai4mat run is writing to this file; wait for it to finish\n"
        )
        fake.release.set()
        assert writer.wait(timeout=60) == 0
        writer.stdout.close(), writer.stderr.close()
        assert before["papers"] == []
        again = subprocess.run(
            [sys.executable, "-m", "harvest", "harvest", "--db", str(db_path), "--config", str(config_path),
             "--api-url", fake.url, "--delay", "0"],
            cwd=REPO, capture_output=True, text=True, timeout=60,
        )
        assert (again.returncode, again.stdout) == (0, "harvest: 0 new, 0 updated, 30 unchanged (3 requests)\n")
    assert [(run["id"], run["status"]) for run in runs(db_path)] == [(1, "ok"), (2, "ok")]


# ------------------------------------------------------------------ a hot journal left by a kill

KILLED_WRITER = """
import os, signal, sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
conn.execute("PRAGMA cache_size = 1")  # spill changed pages into the file before commit
conn.execute("BEGIN")
conn.execute("UPDATE papers SET title = 'HALF-WRITTEN ' || title, summary = summary || summary")
os.kill(os.getpid(), signal.SIGKILL)
"""


def papers_but_last_run(db_path: Path, dumped: dict) -> list[tuple]:
    """The dumped papers rows without last_run, which a harvest that stores nothing still moves."""
    last_run = [row[1] for row in sqlite3.connect(db_path).execute("PRAGMA table_info(papers)")].index("last_run") + 1
    return [row[:last_run] + row[last_run + 1:] for row in dumped["papers"]]


def test_hot_journal_from_a_killed_writer_is_rolled_back_by_the_next_harvest(tmp_path):
    """A writer killed after SQLite spilled pages into the file: the file alone is torn, its
    journal makes it whole. `ai4mat readme` (read-only) says so in one line and changes nothing;
    the next harvest rolls the journal back and proceeds."""
    db_path, config_path = tmp_path / "ai4mat.db", write_config(tmp_path, page_size=100)
    with FakeArxiv() as fake:
        fake.papers = [make_paper(n) for n in range(1, 301)]
        first = subprocess.run(
            [sys.executable, "-m", "harvest", "harvest", "--db", str(db_path), "--config", str(config_path),
             "--api-url", fake.url, "--delay", "0"], cwd=REPO, capture_output=True, text=True, timeout=60,
        )
        assert first.returncode == 0, first.stderr
        before = dump(db_path)
        killed = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(db_path)], timeout=60)
        assert killed.returncode == -signal.SIGKILL
        journal = Path(f"{db_path}-journal")
        assert journal.stat().st_size > 0
        torn = db_path.read_bytes()
        readme = tmp_path / "README.md"
        readme.write_text("# Tracker\n")
        result = subprocess.run(
            [sys.executable, "-m", "harvest", "readme", "--db", str(db_path), "--readme", str(readme),
             "--config", str(config_path)], cwd=REPO, capture_output=True, text=True, timeout=60,
        )
        assert (result.returncode, result.stdout, result.stderr) == (
            1, "",
            f"Error: {db_path}: a write to this file was interrupted and has not been rolled back; "
            f"run `ai4mat harvest --db {db_path}` to recover it\n",
        )
        assert (db_path.read_bytes(), journal.exists(), readme.read_text()) == (torn, True, "# Tracker\n")
        # Datasette serves the file immutable, which ignores the journal: `ai4mat serve` must refuse it.
        served = subprocess.run(
            [sys.executable, "-m", "harvest", "serve", "--db", str(db_path), "--metadata", str(REPO / "metadata.yml")],
            cwd=REPO, capture_output=True, text=True, timeout=60,
        )
        assert (served.returncode, served.stderr) == (
            1,
            f"Error: serve: {db_path}: a write to this file was interrupted and has not been rolled back; "
            f"run `ai4mat harvest --db {db_path}` to recover it\n",
        )
        assert (db_path.read_bytes(), journal.exists()) == (torn, True)

        again = subprocess.run(
            [sys.executable, "-m", "harvest", "harvest", "--db", str(db_path), "--config", str(config_path),
             "--api-url", fake.url, "--delay", "0"], cwd=REPO, capture_output=True, text=True, timeout=60,
        )
        assert (again.returncode, again.stdout) == (0, "harvest: 0 new, 0 updated, 300 unchanged (3 requests)\n")
    assert not journal.exists()
    assert integrity(db_path) == ("ok", "ok")
    after = dump(db_path)
    assert {t: after[t] for t in PAPER_TABLES if t != "papers"} == {t: before[t] for t in PAPER_TABLES if t != "papers"}
    # Only last_run moved (to run 2): no half-written title survived.
    assert papers_but_last_run(db_path, after) == papers_but_last_run(db_path, before)


GROWING_KILLED_WRITER = """
import os, signal, sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
conn.execute("PRAGMA cache_size = 1")  # spill: every original page goes to the journal first
conn.execute("BEGIN")
conn.execute("CREATE TABLE scratch (x)")  # changes page 1: its original is journaled
conn.execute("UPDATE papers SET summary = summary || summary")
conn.executemany("INSERT INTO runs (started_at, query, status) VALUES ('x', ?, 'ok')", [("q" * 2000,)] * 200)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_file_shorter_than_its_header_with_a_hot_journal_is_rolled_back_not_refused(tmp_path):
    """A writer killed mid-commit: page 1 (with the grown size) is written before the pages that
    grow the file, so the file is shorter than its header says, and its journal restores it. The
    harvest refused it as "truncated" (a fresh clone's test run, 2026-12-06, in the backfill kill
    test). Here a real killed writer leaves the hot journal (page 1 journaled), and page 1's size
    is then set past the file's end by hand, as that commit would have written it."""
    db_path, config_path = tmp_path / "ai4mat.db", write_config(tmp_path, page_size=100)
    with FakeArxiv() as fake:
        fake.papers = [make_paper(n) for n in range(1, 301)]
        harvest = [sys.executable, "-m", "harvest", "harvest", "--db", str(db_path), "--config", str(config_path),
                   "--api-url", fake.url, "--delay", "0"]
        assert subprocess.run(harvest, cwd=REPO, capture_output=True, text=True, timeout=60).returncode == 0
        before = dump(db_path)
        killed = subprocess.run([sys.executable, "-c", GROWING_KILLED_WRITER, str(db_path)], timeout=60)
        assert killed.returncode == -signal.SIGKILL
        assert Path(f"{db_path}-journal").stat().st_size > 0
        with open(db_path, "r+b") as handle:
            page_size = int.from_bytes(handle.read(18)[16:18], "big")
            handle.seek(28)
            handle.write((db_path.stat().st_size // page_size + 5).to_bytes(4, "big"))  # 5 pages past the end
        refused = subprocess.run([sys.executable, "-m", "harvest", "readme", "--db", str(db_path), "--readme", str(tmp_path / "R.md"),
                                  "--config", str(config_path)], cwd=REPO, capture_output=True, text=True, timeout=60)
        assert refused.stderr == (f"Error: {db_path}: a write to this file was interrupted and has not been rolled back; "
                                  f"run `ai4mat harvest --db {db_path}` to recover it\n")
        again = subprocess.run(harvest, cwd=REPO, capture_output=True, text=True, timeout=60)
        assert (again.returncode, again.stdout, again.stderr) == (0, "harvest: 0 new, 0 updated, 300 unchanged (3 requests)\n", "")
    assert not Path(f"{db_path}-journal").exists()
    assert integrity(db_path) == ("ok", "ok")
    after = dump(db_path)
    assert {t: after[t] for t in PAPER_TABLES if t != "papers"} == {t: before[t] for t in PAPER_TABLES if t != "papers"}
    assert papers_but_last_run(db_path, after) == papers_but_last_run(db_path, before)  # no doubled summary survived


# ------------------------------------------------------------------ kills during a backfill

BACKFILL_KILLS = 10


def backfill_papers() -> list[dict]:
    """15 papers a year over 2005..2024: 20 yearly windows of 3 pages each."""
    papers = []
    for n in range(1, 301):
        stamp = f"{2005 + (n - 1) // 15}-{1 + n % 12:02d}-{10 + n % 15:02d}T08:30:00Z"
        papers.append(make_paper(n, published=stamp, updated=stamp))
    return papers


def test_sigkill_during_a_backfill_keeps_whole_windows_and_resumes(tmp_path):
    """Each window is stored whole with its `done` row or not at all; reruns fetch only the rest."""
    db_path, config_path = tmp_path / "ai4mat.db", write_config(tmp_path, page_size=5)
    papers = backfill_papers()
    year_of = {p["arxiv_id"]: p["published"][:4] for p in papers}
    rng = random.Random(SEED + 1)
    args = [sys.executable, "-m", "harvest", "backfill", "--db", str(db_path), "--config", str(config_path),
            "--since", "2005-01-01", "--until", "2024-12-31", "--delay", "0.01"]
    landed, progress = 0, []
    with FakeArxiv() as fake:
        fake.papers = papers
        for kill in range(BACKFILL_KILLS):
            # Kill after a random number of further requests (plus up to 30 ms), so the kills land
            # mid-backfill however fast or loaded the machine is.
            target = len(fake.requests) + rng.randint(1, 8)
            process = subprocess.Popen([*args, "--api-url", fake.url], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 30
            while len(fake.requests) < target and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.03))
            process.send_signal(signal.SIGKILL)
            landed += process.wait(timeout=60) == -signal.SIGKILL
            copy = snapshot_copy(db_path, tmp_path / "check")
            if copy is None or copy.stat().st_size == 0:
                continue
            assert integrity(copy) == ("ok", "ok"), f"backfill kill {kill}"
            conn = sqlite3.connect(str(copy))
            try:
                done = {row[0][:4] for row in conn.execute("SELECT window_start FROM backfill_windows WHERE status = 'done'")}
                stored = [row[0] for row in conn.execute("SELECT arxiv_id FROM papers")]
            finally:
                conn.close()
            progress.append(len(done))
            # Exactly the papers of the windows marked done: no window half-stored, none stored twice.
            assert sorted(stored) == sorted(p["arxiv_id"] for p in papers if year_of[p["arxiv_id"]] in done), f"backfill kill {kill}"
        fake.requests.clear()
        final = subprocess.run([*args, "--api-url", fake.url], cwd=REPO, capture_output=True, text=True, timeout=120)
        assert final.returncode == 0, final.stderr
    assert landed >= BACKFILL_KILLS - 2
    print(f"\n{BACKFILL_KILLS} backfill kills, {landed} landed; windows done after each: {progress}")
    assert integrity(db_path) == ("ok", "ok")
    conn = sqlite3.connect(str(db_path))
    try:
        assert conn.execute("SELECT count(*), count(DISTINCT arxiv_id) FROM papers").fetchone() == (300, 300)
        assert conn.execute("SELECT count(*) FROM versions").fetchone() == (300,)
        assert conn.execute("SELECT count(*) FROM backfill_windows WHERE status = 'done'").fetchone() == (20,)
        statuses = conn.execute("SELECT status, error, count(*) FROM runs GROUP BY 1, 2 ORDER BY 1").fetchall()
    finally:
        conn.close()
    assert [row[:2] for row in statuses] in ([("failed", INTERRUPTED), ("ok", None)], [("ok", None)])


# ------------------------------------------------------------------ Ctrl-C and a polite kill


@pytest.mark.parametrize("sig, code, stderr", [(signal.SIGINT, 1, "\nAborted!\n"), (signal.SIGTERM, -signal.SIGTERM, "")])
def test_interrupt_or_terminate_mid_fetch_stores_nothing_and_the_next_run_recovers(sig, code, stderr, tmp_path):
    """Ctrl-C (click prints "Aborted!") or SIGTERM (a CI timeout) while pages are fetched: nothing
    stored, the run is recorded as interrupted at once, and the next run stores all."""
    db_path, config_path = tmp_path / "ai4mat.db", write_config(tmp_path, page_size=10)
    with FakeArxiv() as fake:
        fake.papers = [make_paper(n) for n in range(1, 51)]
        fake.faults, fake.slow_seconds = {n: "slow" for n in range(1, 6)}, 0.5
        process = harvest_process(db_path, config_path, fake)
        deadline = time.monotonic() + 20
        while len(fake.requests) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        process.send_signal(sig)
        stdout, err = process.communicate(timeout=60)
        assert (process.returncode, stdout, err) == (code, "", stderr)
        assert integrity(db_path) == ("ok", "ok")
        assert current_papers(db_path) == []
        assert [(r["id"], r["status"], r["error"], r["requests"]) for r in runs(db_path)] == [
            (1, "failed", INTERRUPTED_BY_USER, len(fake.requests))
        ]
        fake.faults = {}
        again = subprocess.run(
            [sys.executable, "-m", "harvest", "harvest", "--db", str(db_path), "--config", str(config_path),
             "--api-url", fake.url, "--delay", "0"], cwd=REPO, capture_output=True, text=True, timeout=60,
        )
        assert (again.returncode, again.stdout) == (0, "harvest: 50 new, 0 updated, 0 unchanged (5 requests)\n")
    assert [(r["id"], r["status"], r["error"]) for r in runs(db_path)] == [(1, "failed", INTERRUPTED_BY_USER), (2, "ok", None)]


def test_harvest_during_a_backfill_is_refused_and_neither_is_harmed(tmp_path):
    db_path, config_path = tmp_path / "ai4mat.db", write_config(tmp_path, page_size=5)
    with FakeArxiv() as fake:
        fake.papers = backfill_papers()[:60]  # 2005..2008
        fake.faults = {1: "hold"}
        backfill = subprocess.Popen(
            [sys.executable, "-m", "harvest", "backfill", "--db", str(db_path), "--config", str(config_path),
             "--since", "2005-01-01", "--until", "2008-12-31", "--delay", "0", "--api-url", fake.url],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        deadline = time.monotonic() + 20
        while not fake.requests and time.monotonic() < deadline:
            time.sleep(0.02)
        harvest = subprocess.run(
            [sys.executable, "-m", "harvest", "harvest", "--db", str(db_path), "--config", str(config_path),
             "--api-url", fake.url, "--delay", "0"], cwd=REPO, capture_output=True, text=True, timeout=60,
        )
        assert (harvest.returncode, harvest.stdout, harvest.stderr) == (
            1, "", f"Error: harvest failed: {db_path}: another ai4mat run is writing to this file; wait for it to finish\n"
        )
        fake.release.set()
        stdout, _ = backfill.communicate(timeout=60)
        assert backfill.returncode == 0, stdout
    assert integrity(db_path) == ("ok", "ok")
    assert [(r["kind"], r["status"]) for r in runs(db_path)] == [("backfill", "ok")]
    assert len(current_papers(db_path)) == 60

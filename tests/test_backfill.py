"""`ai4mat backfill`: date windows past the result limit, resuming, failed windows, SIGKILL."""

import datetime
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from harvest.backfill import BackfillFailed, Window, plan_windows, run_backfill
from harvest.cli import cli
from harvest.store import INTERRUPTED, writing

from .conftest import rows
from .fake_arxiv import make_paper

QUERY = 'all:"materials discovery"'
ROOT = Path(__file__).resolve().parent.parent


def paper_at(n: int, published: str) -> dict:
    return make_paper(n, arxiv_id=f"2611.{n:05d}", published=published, updated=published)


def three_days() -> list[dict]:
    """24 papers, 8 a day on 2026-11-18..20, at 00:00, 03:00, ... 21:00."""
    return [paper_at(n, f"2026-11-{18 + (n - 1) // 8}T{(n - 1) % 8 * 3:02d}:00:00Z") for n in range(1, 25)]


def asked(fake) -> list[tuple[str, str, str]]:
    return [(r.params["search_query"], r.params["start"], r.params["max_results"]) for r in fake.requests]


def window_rows(path) -> list[tuple]:
    return [
        tuple(row.values())
        for row in rows(path, "select window_start, window_end, status, total_results, papers, requests, run_id, error from backfill_windows order by window_start, window_end")
    ]


def check_integrity(path) -> None:
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        conn.execute("INSERT INTO papers_fts(papers_fts) VALUES('integrity-check')")
    finally:
        conn.close()


def test_plan_windows_are_calendar_years_clipped_to_the_range():
    assert [str(w) for w in plan_windows(datetime.date(2023, 6, 15), datetime.date(2025, 2, 1))] == [
        "2023-06-15 00:00..2023-12-31 23:59",
        "2024-01-01 00:00..2024-12-31 23:59",
        "2025-01-01 00:00..2025-02-01 23:59",
    ]
    first, second = Window(datetime.datetime(2026, 11, 18), datetime.datetime(2026, 11, 20, 23, 59)).halves()
    assert (first.key, second.key) == (("202611180000", "202611191159"), ("202611191200", "202611202359"))


def test_windows_over_the_limit_are_split_until_each_fits(fake_arxiv, client_for, db_path):
    fake_arxiv.papers = three_days()
    fake_arxiv.query_limit = 10
    with writing(db_path) as db:
        report = run_backfill(
            db, client_for(fake_arxiv, delay_seconds=0), QUERY, since=datetime.date(2026, 11, 18),
            until=datetime.date(2026, 11, 20), page_size=5, query_limit=10,
        )
    q = f"({QUERY}) AND submittedDate:"
    assert asked(fake_arxiv) == [
        (q + "[202611180000 TO 202611202359]", "0", "5"),  # 24 > 10: split
        (q + "[202611180000 TO 202611191159]", "0", "5"),  # 12 > 10: split
        (q + "[202611180000 TO 202611181759]", "0", "5"),
        (q + "[202611180000 TO 202611181759]", "5", "1"),
        (q + "[202611181800 TO 202611191159]", "0", "5"),
        (q + "[202611181800 TO 202611191159]", "5", "1"),
        (q + "[202611191200 TO 202611202359]", "0", "5"),  # 12 > 10: split
        (q + "[202611191200 TO 202611200559]", "0", "5"),
        (q + "[202611191200 TO 202611200559]", "5", "1"),
        (q + "[202611200600 TO 202611202359]", "0", "5"),
        (q + "[202611200600 TO 202611202359]", "5", "1"),
    ]
    assert report.summary() == "backfill: 24 new, 0 updated, 0 unchanged; 4 windows fetched, 0 already done (11 requests)"
    assert window_rows(db_path) == [
        ("202611180000", "202611181759", "done", 6, 6, 2, 1, None),
        ("202611180000", "202611191159", "split", 12, None, 1, 1, None),
        ("202611180000", "202611202359", "split", 24, None, 1, 1, None),
        ("202611181800", "202611191159", "done", 6, 6, 2, 1, None),
        ("202611191200", "202611200559", "done", 6, 6, 2, 1, None),
        ("202611191200", "202611202359", "split", 12, None, 1, 1, None),
        ("202611200600", "202611202359", "done", 6, 6, 2, 1, None),
    ]
    assert rows(db_path, "select id, kind, status, fetched, new, updated, requests, total_results, error from runs") == [
        {"id": 1, "kind": "backfill", "status": "ok", "fetched": 24, "new": 24, "updated": 0, "requests": 11,
         "total_results": 24, "error": None}
    ]
    assert rows(db_path, "select count(*) as n, count(distinct arxiv_id) as ids, min(first_run) as lo, max(first_run) as hi from papers") == [
        {"n": 24, "ids": 24, "lo": 1, "hi": 1}
    ]
    assert rows(db_path, "select arxiv_id, version, run_id from versions where arxiv_id in ('2611.00001', '2611.00024')") == [
        {"arxiv_id": "2611.00001", "version": 1, "run_id": 1},
        {"arxiv_id": "2611.00024", "version": 1, "run_id": 1},
    ]
    assert rows(db_path, "select rowid from papers_fts where papers_fts match 'model 17'") == [{"rowid": 17}]
    check_integrity(db_path)

    # The same backfill again knows every window: no request at all, a second ok run with nothing new.
    fake_arxiv.requests.clear()
    with writing(db_path) as db:
        again = run_backfill(
            db, client_for(fake_arxiv, delay_seconds=0), QUERY, since=datetime.date(2026, 11, 18),
            until=datetime.date(2026, 11, 20), page_size=5, query_limit=10,
        )
    assert fake_arxiv.requests == []
    assert again.summary() == "backfill: 0 new, 0 updated, 0 unchanged; 0 windows fetched, 1 already done (0 requests)"


def six_years() -> list[dict]:
    """4 papers a year, 2019..2024."""
    return [paper_at(n, f"{2019 + (n - 1) // 4}-0{1 + (n - 1) % 4}-10T12:00:00Z") for n in range(1, 25)]


def test_a_failed_window_is_recorded_and_retried_by_the_next_backfill(fake_arxiv, client_for, db_path, sleeps):
    fake_arxiv.papers = six_years()
    fake_arxiv.faults = {2: "http503", 3: "http503"}  # the 2020 window, both attempts
    since, until = datetime.date(2019, 1, 1), datetime.date(2021, 12, 31)
    with writing(db_path) as db:
        with pytest.raises(BackfillFailed) as failed:
            run_backfill(db, client_for(fake_arxiv, delay_seconds=0, max_retries=1), QUERY, since=since, until=until)
    message = (
        "1 window failed, first 2020-01-01 00:00..2020-12-31 23:59: arXiv API answered HTTP 503 (start=0) "
        "(gave up after 2 attempts); run the same backfill again to retry"
    )
    assert str(failed.value) == message
    assert sleeps == [1.0]  # Retry-After: 1
    assert window_rows(db_path) == [
        ("201901010000", "201912312359", "done", 4, 4, 1, 1, None),
        ("202001010000", "202012312359", "failed", None, None, 2, 1,
         "arXiv API answered HTTP 503 (start=0) (gave up after 2 attempts)"),
        ("202101010000", "202112312359", "done", 4, 4, 1, 1, None),
    ]
    assert rows(db_path, "select id, kind, status, fetched, new, requests, error from runs") == [
        {"id": 1, "kind": "backfill", "status": "failed", "fetched": 8, "new": 8, "requests": 4, "error": message}
    ]
    assert [r["arxiv_id"] for r in rows(db_path, "select arxiv_id from papers order by arxiv_id")] == [
        f"2611.{n:05d}" for n in (1, 2, 3, 4, 9, 10, 11, 12)
    ]

    fake_arxiv.requests.clear()
    with writing(db_path) as db:
        report = run_backfill(db, client_for(fake_arxiv, delay_seconds=0, max_retries=1), QUERY, since=since, until=until)
    assert asked(fake_arxiv) == [(f"({QUERY}) AND submittedDate:[202001010000 TO 202012312359]", "0", "2000")]
    assert report.summary() == "backfill: 4 new, 0 updated, 0 unchanged; 1 window fetched, 2 already done (1 request)"
    assert [tuple(r.values()) for r in rows(db_path, "select first_run, count(*) from papers group by first_run")] == [(1, 8), (2, 4)]
    assert rows(db_path, "select count(*) as n, count(distinct arxiv_id) as ids from papers") == [{"n": 12, "ids": 12}]
    assert window_rows(db_path)[1] == ("202001010000", "202012312359", "done", 4, 4, 1, 2, None)
    check_integrity(db_path)


def test_cli_backfill_failure_is_one_line_and_a_nonzero_exit(fake_arxiv, db_path, config_path, sleeps):
    fake_arxiv.papers = six_years()
    fake_arxiv.faults = {n: "http500" for n in range(1, 40)}
    result = CliRunner().invoke(
        cli, ["backfill", "--db", str(db_path), "--config", str(config_path), "--since", "2019-01-01",
              "--until", "2024-12-31", "--api-url", fake_arxiv.url],
    )
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[-1] == (
        "Error: backfill failed: 3 windows failed (stopped after 3 failures in a row), first 2019-01-01 00:00..2019-12-31 23:59: "
        "arXiv API answered HTTP 500 (start=0) (gave up after 6 attempts); run the same backfill again to retry"
    )
    assert lines[:-1] == ["backfill: 6 windows planned"] + [
        f"backfill: window {year}-01-01 00:00..{year}-12-31 23:59 failed ({n} of 6 windows, 0 papers stored)"
        for n, year in ((1, 2019), (2, 2020), (3, 2021))
    ]
    assert len(fake_arxiv.requests) == 18


def test_cli_backfill_logs_each_window_and_rejects_a_reversed_range(fake_arxiv, db_path, config_path):
    fake_arxiv.papers = six_years()
    runner = CliRunner()
    args = ["backfill", "--db", str(db_path), "--config", str(config_path), "--api-url", fake_arxiv.url]
    result = runner.invoke(cli, args + ["--since", "2023-06-01", "--until", "2024-12-31"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "backfill: 4 new, 0 updated, 0 unchanged; 2 windows fetched, 0 already done (2 requests)\n"
    assert result.stderr.splitlines() == [
        "backfill: 2 windows planned",
        "backfill: window 2023-06-01 00:00..2023-12-31 23:59 done (1 of 2 windows, 0 papers stored)",
        "backfill: window 2024-01-01 00:00..2024-12-31 23:59 done (2 of 2 windows, 4 papers stored)",
    ]
    result = runner.invoke(cli, args + ["--since", "2024-01-02", "--until", "2024-01-01"])
    assert (result.exit_code, result.stderr) == (1, "Error: --since 2024-01-02 is after --until 2024-01-01\n")


def test_sigkill_mid_backfill_then_rerun_stores_every_paper_exactly_once(fake_arxiv, db_path, config_path):
    papers = [paper_at(n, f"{2015 + (n - 1) // 10}-0{1 + (n - 1) % 9}-1{(n - 1) % 10}T08:30:00Z") for n in range(1, 101)]
    fake_arxiv.papers = papers  # 10 papers a year, 2015..2024
    config_path.write_text(json.dumps({"query": QUERY, "delay_seconds": 0, "page_size": 2}))
    args = ["backfill", "--db", str(db_path), "--config", str(config_path), "--since", "2015-01-01",
            "--until", "2024-12-31", "--api-url", fake_arxiv.url]
    process = subprocess.Popen(
        [sys.executable, "-m", "harvest", *args, "--delay", "0.02"], cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        deadline = time.monotonic() + 30
        done = 0
        while done < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
            if db_path.exists():
                try:
                    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
                    done = conn.execute("select count(*) from backfill_windows where status = 'done'").fetchone()[0]
                    conn.close()
                except sqlite3.OperationalError:
                    pass  # the schema is still being created
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL
    stored_before = rows(db_path, "select window_start from backfill_windows where status = 'done'")
    assert 3 <= len(stored_before) < 10
    check_integrity(db_path)

    fake_arxiv.requests.clear()
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    refetched = {r.params["search_query"][-30:-21] for r in fake_arxiv.requests}  # "[YYYYMMDD" of each window asked
    assert refetched.isdisjoint({"[" + row["window_start"][:8] for row in stored_before})
    assert len(refetched) == 10 - len(stored_before)
    check_integrity(db_path)
    assert rows(db_path, "select count(*) as n, count(distinct arxiv_id) as ids from papers") == [{"n": 100, "ids": 100}]
    assert rows(db_path, "select count(*) as n from versions") == [{"n": 100}]
    assert rows(db_path, "select count(*) as n from papers_fts where papers_fts match 'generative'") == [{"n": 100}]
    assert rows(db_path, "select id, kind, status, error from runs") == [
        {"id": 1, "kind": "backfill", "status": "failed", "error": INTERRUPTED},
        {"id": 2, "kind": "backfill", "status": "ok", "error": None},
    ]
    assert rows(db_path, "select count(*) as n from backfill_windows where status = 'done'") == [{"n": 10}]


def test_paging_past_the_query_limit_fails_the_window_as_arxiv_refuses_it(fake_arxiv, client_for, db_path):
    """The fake refuses start + max_results over its limit, as arXiv does, so the splitting above is needed."""
    fake_arxiv.papers = three_days()
    fake_arxiv.query_limit = 10
    with writing(db_path) as db:
        with pytest.raises(BackfillFailed) as failed:
            run_backfill(
                db, client_for(fake_arxiv, delay_seconds=0), QUERY, since=datetime.date(2026, 11, 18),
                until=datetime.date(2026, 11, 20), page_size=5, query_limit=30_000,
            )
    assert str(failed.value) == (
        "1 window failed, first 2026-11-18 00:00..2026-11-20 23:59: arXiv API error (HTTP 400): "
        "start + max_results must not exceed 10; run the same backfill again to retry"
    )
    assert [(r.params["start"], r.params["max_results"]) for r in fake_arxiv.requests] == [("0", "5"), ("5", "5"), ("10", "5")]
    assert rows(db_path, "select count(*) as n from papers") == [{"n": 0}]


def test_the_readme_lists_the_latest_harvest_not_a_later_backfill(fake_arxiv, client_for, db_path):
    from zoneinfo import ZoneInfo

    from harvest.readme import render_section
    from harvest.runner import run_harvest

    fake_arxiv.papers = [paper_at(99, "2026-11-20T08:00:00Z")]
    with writing(db_path) as db:
        run_harvest(db, client_for(fake_arxiv, delay_seconds=0), QUERY)
        fake_arxiv.papers = six_years()
        run_backfill(db, client_for(fake_arxiv, delay_seconds=0), QUERY, since=datetime.date(2019, 1, 1), until=datetime.date(2019, 12, 31))
        section = render_section(db, zone=ZoneInfo("UTC"))
    assert "### 1. Generative model 99 for inverse materials design" in section
    assert "### 2." not in section


def test_on_a_terminal_backfill_shows_a_progress_bar(fake_arxiv, db_path, config_path):
    import pty

    fake_arxiv.papers = six_years()
    main, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "harvest", "backfill", "--db", str(db_path), "--config", str(config_path),
         "--since", "2019-01-01", "--until", "2020-12-31", "--api-url", fake_arxiv.url],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=terminal, env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "120"},
    )
    os.close(terminal)
    stdout, _ = process.communicate(timeout=30)
    shown = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    os.close(main)
    assert process.returncode == 0
    assert stdout == b"backfill: 8 new, 0 updated, 0 unchanged; 2 windows fetched, 0 already done (2 requests)\n"
    import re

    frames = [re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", frame).strip() for frame in shown.decode().split("\r")]
    # click adds an ETA once a window has taken a second (embedding papers can, on a loaded machine).
    frames = [re.sub(r"  \d\d:\d\d:\d\d(?=  )", "", frame) for frame in frames]
    assert [frame for frame in frames if frame] == [
        "backfill  [------------------------------------]  0/2",
        "backfill  [##################------------------]  1/2  4 papers stored",
        "backfill  [####################################]  2/2  8 papers stored",
    ]


def test_unreadable_entries_are_counted_and_their_window_is_done(fake_arxiv, client_for, db_path):
    fake_arxiv.papers = six_years()[:4] + [paper_at(5, "2019-05-10T12:00:00Z") | {"entry_id": "http://arxiv.org/abs/garbage"}]
    with writing(db_path) as db:
        report = run_backfill(db, client_for(fake_arxiv, delay_seconds=0), QUERY, since=datetime.date(2019, 1, 1), until=datetime.date(2019, 12, 31))
    assert report.summary() == (
        "backfill: 4 new, 0 updated, 0 unchanged; 1 window fetched, 0 already done (1 request); 1 unreadable entry skipped"
    )
    assert rows(db_path, "select status, total_results, papers, skipped from backfill_windows") == [
        {"status": "done", "total_results": 5, "papers": 4, "skipped": 1}
    ]
    assert rows(db_path, "select status, fetched, skipped from runs") == [{"status": "ok", "fetched": 4, "skipped": 1}]


def test_a_window_that_cannot_be_stored_fails_the_backfill_with_one_line(fake_arxiv, db_path, config_path):
    fake_arxiv.papers = six_years()
    args = ["backfill", "--db", str(db_path), "--config", str(config_path), "--since", "2019-01-01",
            "--until", "2020-12-31", "--api-url", fake_arxiv.url]
    with writing(db_path) as db:
        # A trigger standing in for a full disk: the 2020 window's first paper cannot be written.
        db.execute("CREATE TRIGGER no_2020 BEFORE INSERT ON papers WHEN new.published LIKE '2020%' "
                   "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END")
    result = CliRunner().invoke(cli, args)
    assert (result.exit_code, result.stderr.splitlines()[-1]) == (1, (
        "Error: backfill failed: could not store the window 2020-01-01 00:00..2020-12-31 23:59 "
        "(database or disk is full); the windows before it are stored"
    ))
    assert rows(db_path, "select status, new, error from runs") == [
        {"status": "failed", "new": 4, "error": "could not store the window 2020-01-01 00:00..2020-12-31 23:59 "
         "(database or disk is full); the windows before it are stored"}
    ]
    assert [r["window_start"] for r in rows(db_path, "select window_start from backfill_windows where status = 'done'")] == ["201901010000"]
    assert rows(db_path, "select count(*) as n from papers") == [{"n": 4}]
    check_integrity(db_path)

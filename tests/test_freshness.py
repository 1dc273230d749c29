"""Freshness you can see: the home and database pages of a real `ai4mat serve` say when the last
successful daily run was, prominently once it is more than 3 days old, and what failed before any.

Three files: fresh (a success 5 hours ago, a failure since), stale (the last success 4 days ago,
a backfill since), and empty with one failed run.
"""

from __future__ import annotations

import datetime
import html
import importlib.util
import json
import re
import sqlite3
import urllib.request

import pytest

from harvest.store import open_db

from .site_data import PLUGINS_DIR, serving

NOW = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
BANNER = re.compile(r'<p class="ai4mat-freshness ai4mat-freshness-(\w+)"( role="alert")?[^>]*>(.*?) <a href="/ai4mat/runs">Run log</a></p>', re.S)


def stamp(hours_ago: float) -> str:
    return (NOW - datetime.timedelta(hours=hours_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_file(path, runs: list[dict]):
    db = open_db(path)
    db["runs"].insert_all({"query": "q", "kind": "harvest", **run} for run in runs)
    db.close()
    return path


def page(base: str, path: str) -> str:
    with urllib.request.urlopen(base + path.lstrip("/"), timeout=30) as response:
        assert response.status == 200
        return response.read().decode("utf-8")


def banners(text: str) -> list[tuple[str, bool, str]]:
    return [(level, bool(alert), html.unescape(message)) for level, alert, message in BANNER.findall(text)]


def health(base: str) -> dict:
    with urllib.request.urlopen(base + "ai4mat/health.json?_shape=array", timeout=30) as response:
        return json.loads(response.read())[0]


def test_a_fresh_file_says_when_it_was_last_refreshed(tmp_path):
    path = make_file(tmp_path / "ai4mat.db", [
        {"started_at": stamp(30), "finished_at": stamp(29), "status": "ok"},
        {"started_at": stamp(5.2), "finished_at": stamp(5), "status": "ok"},
        {"started_at": stamp(1), "finished_at": stamp(1), "status": "failed", "error": "arXiv API error (HTTP 503): <b>busy</b>"},
    ])
    when = (NOW - datetime.timedelta(hours=5)).strftime("%Y-%m-%d %H:%M")
    message = f"Last successful daily run: {when} UTC (5 hours ago); a daily run since failed: arXiv API error (HTTP 503): <b>busy</b>."
    with serving(path, "--immutable") as (_, base, _):
        home, database = page(base, "/"), page(base, "/ai4mat")
        assert health(base)["status"] == "ok"
    assert banners(home) == banners(database) == [("ok", False, message)]
    assert "&lt;b&gt;busy&lt;/b&gt;" in home and "<b>busy</b>" not in home
    assert re.search(r"<p>\s*[\d,]+ rows in \d+ tables", home)  # the counts stay


def test_a_stale_file_says_so_prominently(tmp_path):
    path = make_file(tmp_path / "ai4mat.db", [
        {"started_at": stamp(100), "finished_at": stamp(97), "status": "ok"},
        # A backfill is not a daily run: it does not make the file fresh.
        {"started_at": stamp(2), "finished_at": stamp(1), "status": "ok", "kind": "backfill"},
    ])
    when = (NOW - datetime.timedelta(hours=97)).strftime("%Y-%m-%d %H:%M")
    message = f"Out of date: the last successful daily run was {when} UTC, 4 days ago."
    with serving(path, "--immutable") as (_, base, _):
        home, database = page(base, "/"), page(base, "/ai4mat")
        assert health(base)["status"] == "stale"  # the monitors' query agrees
    assert banners(home) == banners(database) == [("warning", True, message)]
    # Above the description, so it is the first thing read.
    assert home.index("ai4mat-freshness") < home.index("metadata-description")


def test_an_empty_file_with_a_failed_run_names_the_error_instead_of_a_row_count(tmp_path):
    path = make_file(tmp_path / "ai4mat.db", [
        {"started_at": stamp(3), "finished_at": stamp(3), "status": "failed", "error": "could not reach arXiv (timed out)"},
    ])
    with serving(path, "--immutable") as (_, base, _):
        home, database = page(base, "/"), page(base, "/ai4mat")
        assert health(base)["status"] == "never"
    expected = [("warning", True, "No successful harvest yet: last error could not reach arXiv (timed out).")]
    assert banners(home) == banners(database) == expected
    assert not re.search(r"rows in \d+ table", home)


def test_the_template_variable_of_a_file_without_runs_is_none(tmp_path):
    plugin = load_freshness()
    path = tmp_path / "ai4mat.db"
    sqlite3.connect(path).execute("create table notes (text)").connection.close()
    from datasette.app import Datasette

    import asyncio

    assert asyncio.run(plugin.freshness(Datasette([str(path)]))) is None


def load_freshness():
    spec = importlib.util.spec_from_file_location("ai4mat_freshness_under_test", PLUGINS_DIR / "ai4mat_freshness.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("last_success_at", "last_error", "hours", "expected"),
    [
        ("2026-12-04T20:31:00Z", None, 5, {
            "last_success_at": "2026-12-04T20:31:00Z", "age_hours": 5.0, "stale": False, "last_error": None,
            "message": "Last successful daily run: 2026-12-04 20:31 UTC (5 hours ago).", "level": "ok"}),
        ("2026-12-04T20:31:00Z", None, 0.25, {
            "last_success_at": "2026-12-04T20:31:00Z", "age_hours": 0.25, "stale": False, "last_error": None,
            "message": "Last successful daily run: 2026-12-04 20:31 UTC (less than an hour ago).", "level": "ok"}),
        ("2026-12-04T20:31:00Z", None, 72, {
            "last_success_at": "2026-12-04T20:31:00Z", "age_hours": 72.0, "stale": False, "last_error": None,
            "message": "Last successful daily run: 2026-12-04 20:31 UTC (3 days ago).", "level": "ok"}),
        ("2026-12-04T20:31:00Z", "HTTP 503.", 72.5, {
            "last_success_at": "2026-12-04T20:31:00Z", "age_hours": 72.5, "stale": True, "last_error": "HTTP 503.",
            "message": "Out of date: the last successful daily run was 2026-12-04 20:31 UTC, 3 days ago; "
                       "a daily run since failed: HTTP 503.", "level": "warning"}),
        (None, None, 0, {
            "last_success_at": None, "age_hours": None, "stale": True, "last_error": None,
            "message": "No successful harvest yet: the dataset fills after its first daily run.", "level": "warning"}),
        (None, "x" * 400 + "\n", 0, {
            "last_success_at": None, "age_hours": None, "stale": True, "last_error": "x" * 400 + "\n",
            "message": "No successful harvest yet: last error " + "x" * 300 + "….", "level": "warning"}),
    ],
)
def test_describe_gives_the_documented_shape(last_success_at, last_error, hours, expected):
    now = datetime.datetime(2026, 12, 4, 20, 31, tzinfo=datetime.timezone.utc) + datetime.timedelta(hours=hours)
    assert load_freshness().describe(last_success_at, last_error, now) == expected

"""The `ai4mat` command through click's CliRunner: exact exit codes and messages."""

import json
import sqlite3
import subprocess
import sys

import pytest
from click.testing import CliRunner

from harvest.cli import cli
from harvest.store import SCHEMA_VERSION

from .conftest import rows
from .fake_arxiv import make_paper


def invoke(*args, env=None):
    return CliRunner().invoke(cli, [str(a) for a in args], env=env, catch_exceptions=False)


def harvest_args(fake, db_path, config_path, *extra):
    return ("harvest", "--db", db_path, "--config", config_path, "--api-url", fake.url, "--delay", "0", *extra)


def test_harvest_then_readme(fake_arxiv, db_path, config_path, tmp_path, sleeps):
    fake_arxiv.papers = [make_paper(n) for n in range(1, 4)]
    result = invoke(*harvest_args(fake_arxiv, db_path, config_path))
    assert (result.exit_code, result.output) == (0, "harvest: 3 new, 0 updated, 0 unchanged (1 request)\n")
    assert fake_arxiv.requests[0].params["search_query"] == 'all:"materials discovery"'

    readme = tmp_path / "README.md"
    readme.write_text("# My tracker\n")
    result = invoke("readme", "--db", db_path, "--readme", readme, "--config", config_path)
    assert (result.exit_code, result.output) == (0, f"readme: {readme} updated\n")
    text = readme.read_text()
    assert text.startswith("# My tracker\n\n\n<!-- ARXIV_PAPERS_START -->\n\n## New Papers (3)\n\n*Last updated: ")
    assert text.endswith("---\n\n\n<!-- ARXIV_PAPERS_END -->")
    result = invoke("readme", "--db", db_path, "--readme", readme, "--config", config_path)
    assert (result.exit_code, result.output) == (0, f"readme: {readme} unchanged\n")


def test_api_url_from_environment(fake_arxiv, db_path, config_path, sleeps):
    fake_arxiv.papers = [make_paper(1)]
    result = invoke("harvest", "--db", db_path, "--config", config_path, "--delay", "0", env={"ARXIV_API_URL": fake_arxiv.url})
    assert (result.exit_code, result.output) == (0, "harvest: 1 new, 0 updated, 0 unchanged (1 request)\n")


def test_harvest_failure_is_one_line_and_non_zero(fake_arxiv, db_path, config_path, sleeps):
    fake_arxiv.faults = {1: "error_feed"}
    result = invoke(*harvest_args(fake_arxiv, db_path, config_path))
    assert (result.exit_code, result.output) == (
        1, "Error: harvest failed: arXiv API error (HTTP 400): incorrect id format for abc\n"
    )
    assert rows(db_path, "select status, error from runs") == [
        {"status": "failed", "error": "arXiv API error (HTTP 400): incorrect id format for abc"}
    ]


def test_unreachable_api_fails_after_retries_naming_the_endpoint(db_path, config_path, sleeps):
    # Nothing listens on port 9 of the loopback: every attempt is refused.
    result = invoke("harvest", "--db", db_path, "--config", config_path, "--api-url", "http://127.0.0.1:9/api/query")
    assert result.exit_code == 1
    assert result.output == (
        "Error: harvest failed: cannot reach the arXiv API at http://127.0.0.1:9/api/query (start=0): connection refused "
        "(gave up after 6 attempts); check the network, or change the endpoint with --api-url, $ARXIV_API_URL "
        "or api_url in config.json\n"
    )
    assert rows(db_path, "select requests from runs") == [{"requests": 6}]


@pytest.mark.parametrize(
    "api_url, reason",
    [
        ("notaurl", "Invalid URL 'notaurl': No scheme supplied. Perhaps you meant https://notaurl?"),
        ("ftp://export.arxiv.org/api/query", "No connection adapters were found for 'ftp://export.arxiv.org/api/query'"),
        ("http://", "Invalid URL 'http://': No host supplied"),
    ],
)
def test_an_api_url_that_can_never_work_fails_at_once(api_url, reason, db_path, config_path, sleeps):
    """No retry can mend a malformed URL: one attempt, no waits, a line saying how to fix it, run recorded."""
    result = invoke("harvest", "--db", db_path, "--config", config_path, "--api-url", api_url)
    message = (
        f"{api_url!r} is not a usable arXiv API URL ({reason}); "
        "change the endpoint with --api-url, $ARXIV_API_URL or api_url in config.json"
    )
    assert (result.exit_code, result.output) == (1, f"Error: harvest failed: {message}\n")
    assert sleeps == []
    assert rows(db_path, "select status, error, requests from runs") == [{"status": "failed", "error": message, "requests": 1}]


def test_verbose_logs_each_request_that_succeeds(fake_arxiv, db_path, config_path, sleeps):
    fake_arxiv.papers = [make_paper(n) for n in range(1, 4)]
    config_path.write_text(json.dumps({"query": "all:x", "delay_seconds": 0, "page_size": 2}))
    process = subprocess.run(
        [sys.executable, "-m", "harvest", "-v", "harvest", "--db", str(db_path), "--config", str(config_path),
         "--api-url", fake_arxiv.url], capture_output=True, text=True, timeout=60,
    )
    assert process.returncode == 0, process.stderr
    logged = [line for line in process.stderr.splitlines() if line.startswith("INFO harvest.fetch")]
    assert [line.rsplit(" in ", 1)[0] for line in logged] == [
        "INFO harvest.fetch: arXiv API start=0: 2 entries of 3",
        "INFO harvest.fetch: arXiv API start=2: 1 entries of 3",
    ]


def test_original_tracker_keys_are_ignored_with_a_notice(fake_arxiv, db_path, tmp_path, sleeps):
    config = tmp_path / "old.json"
    config.write_text(json.dumps({"query": "cat:cs.LG", "max_results": 500, "output_dir": "./data/results",
                                  "known_papers_file": "./data/known_papers.json"}))
    fake_arxiv.papers = [make_paper(1)]
    runner = CliRunner()
    result = runner.invoke(cli, [str(a) for a in harvest_args(fake_arxiv, db_path, config)])
    assert result.exit_code == 0
    assert result.stderr == (
        f'notice: {config}: "output_dir" is a key of the original tracker and is ignored here\n'
        f'notice: {config}: "known_papers_file" is a key of the original tracker and is ignored here\n'
    )
    assert result.stdout == "harvest: 1 new, 0 updated, 0 unchanged (1 request)\n"


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", 'invalid JSON at line 1 column 2: Expecting property name enclosed in double quotes'),
        ("[]", "expected a JSON object, got list"),
        ("{}", 'missing "query" (an arXiv search query, e.g. "cat:cond-mat.mtrl-sci")'),
        ('{"query": ""}', '"query" must be a non-empty string'),
        ('{"query": 42}', '"query" must be a non-empty string, got 42'),
        ('{"query": "q", "max_results": "500"}', '"max_results" must be a positive integer, got "500"'),
        ('{"query": "q", "max_results": 0}', '"max_results" must be a positive integer, got 0'),
        ('{"query": "q", "max_results": true}', '"max_results" must be a positive integer, got true'),
        ('{"query": "q", "delay_seconds": -1}', '"delay_seconds" must be a number of seconds >= 0'),
        ('{"query": "q", "timezone": "Mars/Olympus"}', 'unknown time zone "Mars/Olympus" (use an IANA name such as Asia/Singapore)'),
        ('{"query": "q", "api_url": "ftp://x"}', "\"api_url\" must be an http(s) URL, got 'ftp://x'"),
        ('{"query": "q", "page_size": 5000}', "\"page_size\" must be an integer from 1 to 2000 (arXiv's maximum per request), got 5000"),
        ('{"query": "q", "max_result": 5}', 'unknown key "max_result" (known: api_url, dataset_url, delay_seconds, max_results, page_size, query, readme_max_papers, readme_tags, repository, timezone, timezone_label, title, vocabulary)'),
    ],
)
def test_bad_config_is_one_line_and_touches_nothing(content, message, tmp_path, db_path):
    config = tmp_path / "config.json"
    config.write_text(content)
    result = invoke("harvest", "--db", db_path, "--config", config)
    assert (result.exit_code, result.output) == (1, f"Error: {config}: {message}\n")
    assert not db_path.exists()


def test_missing_config(tmp_path, db_path):
    result = invoke("harvest", "--db", db_path, "--config", tmp_path / "nope.json")
    assert (result.exit_code, result.output) == (1, (
        f"Error: {tmp_path / 'nope.json'}: config file not found "
        f"(`ai4mat init --config {tmp_path / 'nope.json'}` writes the default one)\n"
    ))


def test_readme_without_database(tmp_path, config_path):
    result = invoke("readme", "--db", tmp_path / "none.db", "--readme", tmp_path / "R.md", "--config", config_path)
    assert (result.exit_code, result.output) == (
        1, f"Error: {tmp_path / 'none.db'}: database not found (run `ai4mat harvest --db {tmp_path / 'none.db'}` first)\n"
    )
    assert not (tmp_path / "R.md").exists()


def test_readme_with_one_marker_is_refused_and_left_alone(fake_arxiv, db_path, config_path, tmp_path, sleeps):
    fake_arxiv.papers = [make_paper(1)]
    invoke(*harvest_args(fake_arxiv, db_path, config_path))
    readme = tmp_path / "README.md"
    readme.write_text("# T\n<!-- ARXIV_PAPERS_START -->\nkeep me\n")
    result = invoke("readme", "--db", db_path, "--readme", readme, "--config", config_path)
    assert (result.exit_code, result.output) == (
        1,
        f"Error: {readme}: README has a start marker without its pair; fix the <!-- ARXIV_PAPERS_START --> / "
        "<!-- ARXIV_PAPERS_END --> lines by hand\n",
    )
    assert readme.read_text() == "# T\n<!-- ARXIV_PAPERS_START -->\nkeep me\n"


def test_not_a_database_is_refused_and_untouched(tmp_path, config_path):
    bogus = tmp_path / "notes.db"
    bogus.write_text("these are my notes, not a database\n")
    result = invoke("harvest", "--db", bogus, "--config", config_path, "--api-url", "http://127.0.0.1:9/")
    assert (result.exit_code, result.output) == (1, f"Error: harvest failed: {bogus}: not an SQLite database; refusing to touch it\n")
    assert bogus.read_text() == "these are my notes, not a database\n"


def test_newer_schema_is_refused_and_untouched(tmp_path, config_path):
    newer = tmp_path / "newer.db"
    connection = sqlite3.connect(newer)
    connection.execute("PRAGMA user_version = 99")
    connection.execute("create table papers (arxiv_id text primary key)")
    connection.commit()
    connection.close()
    before = newer.read_bytes()
    result = invoke("harvest", "--db", newer, "--config", config_path, "--api-url", "http://127.0.0.1:9/")
    assert (result.exit_code, result.output) == (
        1, f"Error: harvest failed: {newer}: written by a newer ai4mat (schema 99, this is {SCHEMA_VERSION}); "
        "upgrade ai4mat (pip install -U ai4mat) to use it\n"
    )
    assert newer.read_bytes() == before


def test_foreign_database_is_refused_and_untouched(tmp_path, config_path):
    foreign = tmp_path / "foreign.db"
    connection = sqlite3.connect(foreign)
    connection.execute("create table invoices (id integer primary key, total real)")
    connection.commit()
    connection.close()
    before = foreign.read_bytes()
    result = invoke("readme", "--db", foreign, "--readme", tmp_path / "R.md", "--config", config_path)
    assert (result.exit_code, result.output) == (
        1, f"Error: {foreign}: not an ai4mat database (it holds other tables); refusing to touch it\n"
    )
    assert foreign.read_bytes() == before


def test_python_dash_m_harvest_is_the_same_command():
    result = subprocess.run([sys.executable, "-m", "harvest", "--version"], capture_output=True, text=True)
    assert (result.returncode, result.stdout) == (0, "ai4mat, version 0.1.0\n")


def test_query_larger_than_the_scan_gets_a_notice(fake_arxiv, db_path, tmp_path, sleeps):
    config = tmp_path / "capped.json"
    config.write_text(json.dumps({"query": "cat:cs.LG", "max_results": 2}))
    fake_arxiv.papers = [make_paper(n) for n in range(1, 6)]
    result = CliRunner().invoke(cli, [str(a) for a in harvest_args(fake_arxiv, db_path, config)])
    assert (result.exit_code, result.stdout) == (0, "harvest: 2 new, 0 updated, 0 unchanged (1 request)\n")
    assert result.stderr == (
        "notice: the query has 5 results; this run scanned the newest 2 (arXiv serves at most 30,000 per query, "
        "or config max_results): use `ai4mat backfill` for older papers\n"
    )


def test_load_replays_recorded_responses_through_the_same_path(db_path, config_path):
    fixtures = "tests/fixtures/"
    result = invoke("harvest", "--db", db_path, "--config", config_path,
                    "--load", fixtures + "atom_2026_idlist_oldstyle_astro-ph_0601001.xml",
                    "--load", fixtures + "atom_2026_all-testing_100entries.xml")
    assert (result.exit_code, result.output) == (0, "harvest: 101 new, 0 updated, 0 unchanged (0 requests)\n")
    assert rows(db_path, "select arxiv_id, version, first_run from papers where arxiv_id like '%/%' order by arxiv_id") == [
        {"arxiv_id": "astro-ph/0601001", "version": 1, "first_run": 1},
        {"arxiv_id": "cs/0503050", "version": 1, "first_run": 1},
        {"arxiv_id": "gr-qc/0103067", "version": 1, "first_run": 1},
        {"arxiv_id": "hep-ph/0301050", "version": 2, "first_run": 1},
    ]
    result = invoke("harvest", "--db", db_path, "--config", config_path,
                    "--load", fixtures + "atom_2026_error_incorrect_id_format_http400.xml")
    assert (result.exit_code, result.output) == (
        1, "Error: harvest failed: tests/fixtures/atom_2026_error_incorrect_id_format_http400.xml: "
        "recorded arXiv API error: incorrect id format for abc\n"
    )
    assert rows(db_path, "select id, status from runs order by id") == [{"id": 1, "status": "ok"}, {"id": 2, "status": "failed"}]

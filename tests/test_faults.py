"""Fault injection: every fault the fake arXiv API can serve, alone and combined, through `ai4mat harvest`.

Promises checked:
- a transient fault is retried and the run ends with exactly the database a fault-free run
  writes (every paper table and the FTS index compared row for row);
- a persistent fault (retries exhausted, arXiv's error feed, a Retry-After too long to wait)
  exits 1 with one line naming the cause, records the run as `failed` with that cause, leaves
  every paper table as it was, and the next run after the fault clears stores everything;
- the client asked for exactly the pages it should, with its User-Agent and Accept headers,
  and waited what it should: the polite delay between requests, backoff, Retry-After.
"""

from __future__ import annotations

import email.utils
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import harvest.fetch
import harvest.runner
from harvest import __version__
from harvest.cli import cli
from harvest.fetch import ArxivClient

from .dumps import dump, runs
from .fake_arxiv import FakeArxiv, make_paper

QUERY = 'cat:cond-mat.mtrl-sci AND all:"inverse design"'
PAGE = 10
USER_AGENT = f"ai4mat/{__version__}"
TRANSIENT = ("http500", "http503", "http429", "http406", "timeout", "reset", "cut", "truncated", "empty", "html200")
REPO = Path(__file__).resolve().parent.parent


def first_papers() -> list[dict]:
    return [make_paper(n) for n in range(1, 21)]


def second_papers() -> list[dict]:
    """Run 2 serves 25 papers on 3 pages: 5 new versions, 5 new papers, 15 unchanged."""
    papers = first_papers()
    for n in range(1, 6):
        papers[n - 1] = make_paper(
            n, version=2, day="2026-11-21", published=papers[n - 1]["published"], title=f"Generative model {n}, revised"
        )
    return papers + [make_paper(n, day="2026-11-21") for n in range(21, 26)]


def write_config(folder: Path) -> Path:
    path = folder / "config.json"
    path.write_text(json.dumps({"query": QUERY, "delay_seconds": 0, "page_size": PAGE}))
    return path


def harvest_cli(fake: FakeArxiv, db_path: Path, config_path: Path, timeout: str = "0.5"):
    args = ["harvest", "--db", str(db_path), "--config", str(config_path), "--api-url", fake.url, "--timeout", timeout]
    return CliRunner().invoke(cli, args, catch_exceptions=False)


def build(folder: Path, *, fail_between: bool) -> Path:
    """A reference file: run 1 and run 2 fault-free (optionally with a failed run in between)."""
    folder.mkdir()
    db_path, config_path = folder / "ai4mat.db", write_config(folder)
    with pytest.MonkeyPatch.context() as patch, FakeArxiv() as fake:
        patch.setattr(harvest.fetch, "_sleep", lambda seconds: None)
        fake.papers = first_papers()
        assert harvest_cli(fake, db_path, config_path).exit_code == 0
        fake.papers = second_papers()
        if fail_between:
            fake.faults = {len(fake.requests) + 1: "error_feed"}
            assert harvest_cli(fake, db_path, config_path).exit_code == 1
        assert harvest_cli(fake, db_path, config_path).exit_code == 0
    return db_path


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    return build(tmp_path_factory.mktemp("reference") / "clean", fail_between=False)


@pytest.fixture(scope="module")
def reference_after_failure(tmp_path_factory) -> Path:
    return build(tmp_path_factory.mktemp("reference") / "failed", fail_between=True)


@pytest.fixture
def after_first_run(fake_arxiv, tmp_path, sleeps):
    """A file holding run 1; the fake now serves run 2's papers and has forgotten its requests."""
    db_path, config_path = tmp_path / "ai4mat.db", write_config(tmp_path)
    fake_arxiv.papers = first_papers()
    assert harvest_cli(fake_arxiv, db_path, config_path).output == "harvest: 20 new, 0 updated, 0 unchanged (2 requests)\n"
    fake_arxiv.papers = second_papers()
    fake_arxiv.requests.clear()
    sleeps.clear()
    return db_path, config_path


def asked(fake: FakeArxiv) -> list[int]:
    """The `start` of every request, after checking everything else each request carried."""
    for request in fake.requests:
        assert request.path == "/api/query"
        assert set(request.params) == {"search_query", "start", "max_results", "sortBy", "sortOrder"}
        # The last page asks only for what totalResults (25) says is left.
        start = int(request.params["start"])
        assert (request.params["search_query"], request.params["max_results"]) == (QUERY, str(min(PAGE, 25 - start)))
        assert (request.params["sortBy"], request.params["sortOrder"]) == ("lastUpdatedDate", "descending")
        assert request.headers["User-Agent"] == USER_AGENT
        assert request.headers["Accept"] == "application/atom+xml"
    return [int(request.params["start"]) for request in fake.requests]


def expected_runs(reference_path: Path, **changes) -> list[dict]:
    expected = runs(reference_path)
    for run_id, values in changes.items():
        expected[int(run_id[1:]) - 1].update(values)
    return expected


# ------------------------------------------------------------------ transient faults


@pytest.mark.parametrize("at", [1, 2, 3], ids=["first-page", "middle-page", "last-page"])
@pytest.mark.parametrize("fault", TRANSIENT)
def test_transient_fault_once_ends_as_a_fault_free_run(fault, at, fake_arxiv, after_first_run, reference, sleeps):
    db_path, config_path = after_first_run
    fake_arxiv.faults = {at: fault}
    fake_arxiv.timeout_seconds = 1.0
    result = harvest_cli(fake_arxiv, db_path, config_path)
    assert (result.exit_code, result.output) == (0, "harvest: 5 new, 5 updated, 15 unchanged (4 requests)\n")
    starts = [0, 10, 20]
    assert asked(fake_arxiv) == starts[:at] + starts[at - 1 :]
    # --delay 0 makes backoff 0 s; only arXiv's Retry-After: 1 is waited for.
    assert sleeps == ([1.0] if fault in ("http503", "http429") else [])
    assert dump(db_path) == dump(reference)
    assert runs(db_path) == expected_runs(reference, r2={"requests": 4})


COMBINATIONS = {
    # request number -> fault; pages start at 0, 10, 20
    "a-different-fault-on-every-page": (
        {1: "http503", 2: "reset", 4: "empty", 5: "http429", 6: "truncated", 8: "cut"},
        [0, 0, 0, 10, 10, 10, 10, 20, 20], [1.0, 1.0],
    ),
    "five-faults-per-page-the-most-retried": (
        {
            1: "http500", 2: "http406", 3: "html200", 4: "reset", 5: "empty",
            7: "cut", 8: "truncated", 9: "http503", 10: "empty", 11: "http500",
            13: "http429", 14: "html200", 15: "reset", 16: "cut", 17: "truncated",
        },
        [0] * 6 + [10] * 6 + [20] * 6, [1.0, 1.0],
    ),
    "timeout-then-error-page-then-empty-page": (
        {2: "timeout", 3: "html200", 4: "empty"}, [0, 10, 10, 10, 10, 20], [],
    ),
    "slow-answers-within-the-timeout-are-not-faults": (
        {1: "slow", 2: "slow", 3: "slow"}, [0, 10, 20], [],
    ),
}


@pytest.mark.parametrize("name", COMBINATIONS)
def test_combined_transient_faults_end_as_a_fault_free_run(name, fake_arxiv, after_first_run, reference, sleeps):
    db_path, config_path = after_first_run
    faults, starts, waits = COMBINATIONS[name]
    fake_arxiv.faults = dict(faults)
    fake_arxiv.timeout_seconds, fake_arxiv.slow_seconds = 1.0, 0.2
    result = harvest_cli(fake_arxiv, db_path, config_path)
    requests = len(starts)
    assert (result.exit_code, result.output) == (
        0, f"harvest: 5 new, 5 updated, 15 unchanged ({requests} requests)\n"
    )
    assert asked(fake_arxiv) == starts
    assert sleeps == waits
    assert dump(db_path) == dump(reference)
    assert runs(db_path) == expected_runs(reference, r2={"requests": requests})


def test_slow_answer_beyond_the_timeout_is_a_timeout(fake_arxiv, after_first_run, reference):
    db_path, config_path = after_first_run
    fake_arxiv.faults, fake_arxiv.slow_seconds = {2: "slow"}, 0.8
    result = harvest_cli(fake_arxiv, db_path, config_path, timeout="0.3")
    assert (result.exit_code, result.output) == (0, "harvest: 5 new, 5 updated, 15 unchanged (4 requests)\n")
    assert asked(fake_arxiv) == [0, 10, 10, 20]
    assert dump(db_path) == dump(reference)


# ------------------------------------------------------------------ persistent faults

GAVE_UP = " (gave up after 6 attempts)"
UNREACHABLE = "; check the network, or change the endpoint with --api-url, $ARXIV_API_URL or api_url in config.json"
PERSISTENT = {
    "http500": "arXiv API answered HTTP 500 (start=10)" + GAVE_UP,
    "http503": "arXiv API answered HTTP 503 (start=10)" + GAVE_UP,
    "http429": "arXiv API answered HTTP 429 (start=10)" + GAVE_UP,
    "http406": "arXiv API answered HTTP 406 (start=10)" + GAVE_UP,
    "timeout": "arXiv API timed out (start=10)" + GAVE_UP,
    "reset": "cannot reach the arXiv API at {url} (start=10): connection reset" + GAVE_UP + UNREACHABLE,
    "cut": "arXiv API closed the connection mid-response (start=10)" + GAVE_UP,
    "truncated": "unreadable arXiv response (start=10): response is not well-formed XML (<unknown>:{line}:4: unclosed token)" + GAVE_UP,
    "empty": "arXiv returned an empty page at start=10 although totalResults is 25" + GAVE_UP,
    "html200": "unreadable arXiv response (start=10): response is not an arXiv API feed (no opensearch:totalResults)" + GAVE_UP,
}


def check_failed_then_recovered(fake, db_path, config_path, before, reference_after_failure, message, requests):
    """The failed run 2 is recorded, papers untouched; run 3 without faults stores everything."""
    assert dump(db_path) == before
    assert runs(db_path)[1] | {"ai4mat_version": None} == {
        "id": 2, "query": QUERY, "status": "failed", "fetched": None, "new": None, "updated": None,
        "requests": requests, "error": message, "kind": "harvest", "total_results": None, "skipped": None,
        "refreshed": None, "ai4mat_version": None,
    }
    fake.faults = {}
    fake.requests.clear()
    result = harvest_cli(fake, db_path, config_path)
    assert (result.exit_code, result.output) == (0, "harvest: 5 new, 5 updated, 15 unchanged (3 requests)\n")
    assert asked(fake) == [0, 10, 20]
    assert dump(db_path) == dump(reference_after_failure)
    assert runs(db_path) == expected_runs(reference_after_failure, r2={"error": message, "requests": requests})


@pytest.mark.parametrize("fault", PERSISTENT)
def test_persistent_fault_fails_cleanly_and_the_next_run_stores_everything(
    fault, fake_arxiv, after_first_run, reference_after_failure, sleeps
):
    db_path, config_path = after_first_run
    before = dump(db_path)
    # Page 1 is served; all six attempts at page 2 fail.
    fake_arxiv.faults = {n: fault for n in range(2, 8)}
    fake_arxiv.timeout_seconds = 0.6
    result = harvest_cli(fake_arxiv, db_path, config_path, timeout="0.3")
    message = PERSISTENT[fault].format(line=_truncated_line(fake_arxiv), url=fake_arxiv.url)
    assert (result.exit_code, result.output) == (1, f"Error: harvest failed: {message}\n")
    assert asked(fake_arxiv) == [0] + [10] * 6
    assert sleeps == ([1.0] * 5 if fault in ("http503", "http429") else [])
    check_failed_then_recovered(fake_arxiv, db_path, config_path, before, reference_after_failure, message, 7)


def _truncated_line(fake: FakeArxiv) -> int:
    """The line where the fake's half of page 2 ends (where expat finds the unclosed token)."""
    body, _ = fake.page({"search_query": QUERY, "start": "10", "max_results": str(PAGE), "sortBy": "lastUpdatedDate", "sortOrder": "descending"})
    return body[: len(body) // 2].count(b"\n") + 1


@pytest.mark.parametrize(
    "faults, starts, message",
    [
        ({n: "http503" for n in range(1, 7)}, [0] * 6, "arXiv API answered HTTP 503 (start=0)" + GAVE_UP),
        ({n: "reset" for n in range(3, 9)}, [0, 10] + [20] * 6, "cannot reach the arXiv API at {url} (start=20): connection reset" + GAVE_UP + UNREACHABLE),
        (
            {2: "http500", 3: "reset", 4: "cut", 5: "empty", 6: "html200", 7: "http406"}, [0] + [10] * 6,
            "arXiv API answered HTTP 406 (start=10)" + GAVE_UP,  # the last cause is named
        ),
        ({1: "error_feed"}, [0], "arXiv API error (HTTP 400): incorrect id format for abc"),
        ({3: "error_feed"}, [0, 10, 20], "arXiv API error (HTTP 400): incorrect id format for abc"),
        ({1: "http500", 2: "error_feed"}, [0, 0], "arXiv API error (HTTP 400): incorrect id format for abc"),
    ],
    ids=["first-page-503", "last-page-reset", "mixed-faults", "error-feed-first", "error-feed-last", "error-feed-on-retry"],
)
def test_persistent_fault_anywhere_leaves_papers_as_before(
    faults, starts, message, fake_arxiv, after_first_run, reference_after_failure, sleeps
):
    db_path, config_path = after_first_run
    before = dump(db_path)
    fake_arxiv.faults = faults
    result = harvest_cli(fake_arxiv, db_path, config_path)
    message = message.format(url=fake_arxiv.url)
    assert (result.exit_code, result.output) == (1, f"Error: harvest failed: {message}\n")
    assert asked(fake_arxiv) == starts
    check_failed_then_recovered(fake_arxiv, db_path, config_path, before, reference_after_failure, message, len(starts))


@pytest.mark.parametrize("fault", ["http503", "http429"])
def test_retry_after_too_long_fails_at_once(fault, fake_arxiv, after_first_run, reference_after_failure, sleeps):
    db_path, config_path = after_first_run
    before = dump(db_path)
    fake_arxiv.faults, fake_arxiv.retry_after = {2: fault}, "3600"
    result = harvest_cli(fake_arxiv, db_path, config_path)
    message = f"arXiv API answered HTTP {fault[4:]} (start=10); arXiv asked to wait 3600 s, longer than 300 s"
    assert (result.exit_code, result.output) == (1, f"Error: harvest failed: {message}\n")
    assert asked(fake_arxiv) == [0, 10]
    assert sleeps == []
    check_failed_then_recovered(fake_arxiv, db_path, config_path, before, reference_after_failure, message, 2)


def test_persistent_fault_in_a_real_process(fake_arxiv, after_first_run, reference_after_failure):
    """`python -m harvest harvest` as cron runs it: exit 1, retries logged, then the one error line."""
    db_path, config_path = after_first_run
    before = dump(db_path)
    fake_arxiv.faults, fake_arxiv.retry_after = {n: "http503" for n in range(2, 8)}, "0"
    process = subprocess.run(
        [sys.executable, "-m", "harvest", "harvest", "--db", str(db_path), "--config", str(config_path),
         "--api-url", fake_arxiv.url, "--delay", "0"],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )
    message = "arXiv API answered HTTP 503 (start=10)" + GAVE_UP
    assert (process.returncode, process.stdout) == (1, "")
    assert process.stderr.splitlines() == [
        f"WARNING harvest.fetch: arXiv API answered HTTP 503 (start=10); retry {n} of 5 in 0.0 s" for n in range(1, 6)
    ] + [f"Error: harvest failed: {message}"]
    check_failed_then_recovered(fake_arxiv, db_path, config_path, before, reference_after_failure, message, 7)


# ------------------------------------------------------------------ the waits asked for


def test_polite_delay_and_backoff_are_exact(fake_arxiv, sleeps):
    fake_arxiv.papers = second_papers()
    fake_arxiv.faults = {2: "http500", 3: "reset", 5: "http503"}
    fake_arxiv.retry_after = "20"
    # A clock that never moves: every wait is the full amount the client asks for.
    client = ArxivClient(fake_arxiv.url, delay_seconds=3.0, timeout=(2.0, 1.0), clock=lambda: 0.0)
    result = client.search(QUERY, page_size=PAGE)
    assert (len(result.papers), result.requests) == (25, 6)
    assert asked(fake_arxiv) == [0, 10, 10, 10, 20, 20]
    # page 2: delay 3, backoff 3, backoff 6; page 3: delay 3, then Retry-After 20 beats backoff 3.
    assert sleeps == [3.0, 3.0, 6.0, 3.0, 20.0]


def test_backoff_doubles_to_the_last_retry(fake_arxiv, sleeps):
    fake_arxiv.papers = second_papers()
    fake_arxiv.faults = {n: "empty" for n in range(1, 7)}
    client = ArxivClient(fake_arxiv.url, delay_seconds=3.0, timeout=(2.0, 1.0), clock=lambda: 0.0)
    with pytest.raises(harvest.fetch.FetchError):
        client.search(QUERY, page_size=PAGE)
    assert sleeps == [3.0, 6.0, 12.0, 24.0, 48.0]


def test_retry_after_as_an_http_date_is_honoured(fake_arxiv, sleeps):
    fake_arxiv.papers = first_papers()[:3]
    fake_arxiv.faults = {1: "http429"}
    fake_arxiv.retry_after = email.utils.formatdate(time.time() + 40, usegmt=True)
    client = ArxivClient(fake_arxiv.url, delay_seconds=3.0, timeout=(2.0, 1.0), clock=lambda: 0.0)
    assert len(client.search(QUERY).papers) == 3
    assert len(sleeps) == 1 and 38.0 <= sleeps[0] <= 40.0


def test_polite_delay_is_kept_between_requests_on_the_wire(fake_arxiv, monkeypatch):
    """Real sleeps: the fake sees each request start at least the delay after the previous answer."""
    monkeypatch.setattr(harvest.fetch, "_sleep", time.sleep)
    fake_arxiv.papers = second_papers()
    fake_arxiv.faults = {2: "http500"}
    client = ArxivClient(fake_arxiv.url, delay_seconds=0.25, backoff_seconds=0.25, timeout=(2.0, 1.0))
    assert len(client.search(QUERY, page_size=PAGE).papers) == 25
    arrivals = [request.at for request in fake_arxiv.requests]
    assert len(arrivals) == 4
    assert all(later - earlier >= 0.25 for earlier, later in zip(arrivals, arrivals[1:]))


# ------------------------------------------------------------------ a body that trickles in


def test_trickling_answer_is_cut_off_and_retried(fake_arxiv, after_first_run, reference, caplog):
    """Bytes every 0.15 s never trip the 0.3 s read timeout; the whole-response deadline
    (ten read timeouts, 3 s) does, and the retry completes the run."""
    db_path, config_path = after_first_run
    fake_arxiv.faults, fake_arxiv.trickle_seconds = {2: "trickle"}, 0.15
    began = time.monotonic()
    result = harvest_cli(fake_arxiv, db_path, config_path, timeout="0.3")
    assert (result.exit_code, result.output) == (0, "harvest: 5 new, 5 updated, 15 unchanged (4 requests)\n")
    assert [r.getMessage() for r in caplog.records if r.name == "harvest.fetch"] == [
        "arXiv API sent its answer too slowly (start=10): over 3 s; retry 1 of 5 in 0.0 s"
    ]
    assert time.monotonic() - began < 5.4  # the whole trickled body would take 5.4 s alone
    assert asked(fake_arxiv) == [0, 10, 10, 20]
    assert dump(db_path) == dump(reference)


def test_trickling_answers_fail_the_fetch_with_the_cause(fake_arxiv, sleeps):
    fake_arxiv.papers = second_papers()
    fake_arxiv.faults = {1: "trickle", 2: "trickle"}
    client = ArxivClient(fake_arxiv.url, delay_seconds=0, max_retries=1, timeout=(2.0, 0.5), response_seconds=0.6)
    began = time.monotonic()
    with pytest.raises(harvest.fetch.FetchError) as failure:
        client.search(QUERY, page_size=PAGE)
    assert str(failure.value) == "arXiv API sent its answer too slowly (start=0): over 0.6 s (gave up after 2 attempts)"
    assert 1.2 <= time.monotonic() - began < 3.6  # each whole trickled body takes 1.8 s


def test_a_bug_while_storing_is_recorded_not_left_running(fake_arxiv, after_first_run, monkeypatch):
    """Anything but an SQLite error while storing is a bug: it shows with its traceback, the
    transaction is rolled back, and the run is `failed` with the error (not left `running`)."""
    db_path, config_path = after_first_run
    before = dump(db_path)

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(harvest.runner, "save_papers", broken)
    with pytest.raises(RuntimeError, match="^boom$"):
        harvest_cli(fake_arxiv, db_path, config_path)
    assert dump(db_path) == before
    assert [(r["id"], r["status"], r["error"]) for r in runs(db_path)] == [(1, "ok", None), (2, "failed", "unexpected RuntimeError: boom")]


def test_gzip_bomb_is_cut_off_at_the_size_limit(fake_arxiv, sleeps):
    """A few KB that decompress to 16 MB: reading stops at the limit (1 MB here, 64 MB by
    default), so memory stays bounded; the page is retried like any bad answer."""
    fake_arxiv.papers = second_papers()
    fake_arxiv.faults = {1: "gzip_bomb", 2: "gzip_bomb"}
    client = ArxivClient(fake_arxiv.url, delay_seconds=0, max_retries=1, timeout=(2.0, 2.0), max_response_bytes=2**20)
    with pytest.raises(harvest.fetch.FetchError) as failure:
        client.search(QUERY, page_size=PAGE)
    assert str(failure.value) == "arXiv API sent more than 1 MB for one page (start=0) (gave up after 2 attempts)"
    fake_arxiv.faults = {1: "gzip_bomb"}
    fake_arxiv.requests.clear()
    result = ArxivClient(fake_arxiv.url, delay_seconds=0, timeout=(2.0, 2.0), max_response_bytes=2**20).search(QUERY, page_size=PAGE)
    assert (len(result.papers), result.requests) == (25, 4)

"""Backfill: harvest a query's whole history, window by window, past arXiv's 30,000-result limit.

The date range is cut into `submittedDate:[YYYYMMDDHHMM TO YYYYMMDDHHMM]` windows (calendar years
to start with), each ANDed with the configured query and fetched oldest first. A window whose
totalResults exceeds the limit is halved until every part fits. Each window is stored in its own
transaction together with its `backfill_windows` row, so an interrupted backfill, run again,
skips the windows already done and fetches the rest.
"""

from __future__ import annotations

import datetime
import logging
import sqlite3
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import sqlite_utils

from .fetch import PAGE_SIZE, QUERY_LIMIT, ArxivClient, FetchError
from .parse import ArxivAPIError
from .store import INTERRUPTED_BY_USER, RunCounts, close_interrupted_runs, fail_run, finish_run, save_papers_bulk, start_run, utc_now

log = logging.getLogger(__name__)

MINUTE = datetime.timedelta(minutes=1)
STAMP = "%Y%m%d%H%M"  # arXiv's submittedDate format, GMT
MAX_FAILED_IN_A_ROW = 3  # then arXiv is down rather than one window broken: stop


@dataclass(frozen=True, order=True)
class Window:
    """Submission times from `start` to `end`, both inclusive, to the minute (UTC)."""

    start: datetime.datetime
    end: datetime.datetime

    @property
    def key(self) -> tuple[str, str]:
        return self.start.strftime(STAMP), self.end.strftime(STAMP)

    def query(self, query: str) -> str:
        start, end = self.key
        return f"({query}) AND submittedDate:[{start} TO {end}]"

    def halves(self) -> tuple["Window", "Window"]:
        minutes = (self.end - self.start) // MINUTE
        middle = self.start + (minutes // 2) * MINUTE
        return Window(self.start, middle), Window(middle + MINUTE, self.end)

    def __str__(self) -> str:
        return f"{self.start:%Y-%m-%d %H:%M}..{self.end:%Y-%m-%d %H:%M}"


def plan_windows(since: datetime.date, until: datetime.date) -> list[Window]:
    """Calendar years from `since` 00:00 to `until` 23:59 (UTC), the first and last clipped."""
    windows = []
    start = datetime.datetime.combine(since, datetime.time())
    last = datetime.datetime.combine(until, datetime.time(23, 59))
    while start <= last:
        end = min(datetime.datetime(start.year, 12, 31, 23, 59), last)
        windows.append(Window(start, end))
        start = end + MINUTE
    return windows


@dataclass
class BackfillProgress:
    """What a progress display needs; `windows_total` grows when a window is split."""

    windows_total: int = 0
    windows_done: int = 0  # fetched, skipped as done before, or failed
    papers_stored: int = 0


# Called once with (None, "planned", progress) before the first request, then after each window
# with the window, what happened to it ("done", "skipped", "split", "failed") and the progress so far.
ProgressCallback = Callable[["Window | None", str, BackfillProgress], None]


@dataclass
class BackfillReport:
    run_id: int
    counts: RunCounts
    requests: int
    windows_fetched: int = 0
    windows_skipped: int = 0
    unreadable: int = 0  # entries the parser could not read, left out
    failures: list[tuple[Window, str]] = field(default_factory=list)

    def summary(self) -> str:
        line = (
            f"backfill: {self.counts.new} new, {self.counts.updated} updated, {self.counts.unchanged} unchanged; "
            f"{self.windows_fetched} window{'s' if self.windows_fetched != 1 else ''} fetched, "
            f"{self.windows_skipped} already done ({self.requests} request{'s' if self.requests != 1 else ''})"
        )
        if self.unreadable:
            line += f"; {self.unreadable} unreadable entr{'ies' if self.unreadable != 1 else 'y'} skipped"
        return line


class BackfillFailed(Exception):
    """Some windows could not be fetched; they are recorded as failed and the next backfill retries them.

    Every window that succeeded is stored.
    """

    def __init__(self, report: BackfillReport, message: str):
        super().__init__(message)
        self.report = report


def _covered(window: Window, done: list[tuple[str, str]]) -> bool:
    """True if the union of the `done` windows (sorted by start) covers `window`."""
    cursor = window.start
    for start, end in done:
        start_at = datetime.datetime.strptime(start, STAMP)
        end_at = datetime.datetime.strptime(end, STAMP)
        if start_at > cursor:
            break
        if end_at >= cursor:
            cursor = end_at + MINUTE
            if cursor > window.end:
                return True
    return False


def _record_window(db: sqlite_utils.Database, query: str, window: Window, run_id: int, status: str, **fields) -> None:
    start, end = window.key
    db["backfill_windows"].upsert(
        {
            "query": query, "window_start": start, "window_end": end, "status": status,
            "run_id": run_id, "finished_at": utc_now(), "error": None, **fields,
        },
        pk=("query", "window_start", "window_end"),
    )


def run_backfill(
    db: sqlite_utils.Database,
    client: ArxivClient,
    query: str,
    *,
    since: datetime.date,
    until: datetime.date,
    page_size: int = PAGE_SIZE,
    query_limit: int = QUERY_LIMIT,
    progress: ProgressCallback | None = None,
    vocabulary=None,
) -> BackfillReport:
    """Fetch and store every result of `query` submitted from `since` to `until` (UTC days, inclusive).

    One `runs` row of kind `backfill` records the invocation; papers it stores first are owned
    by it. Windows done by an earlier backfill of the same query are skipped. A window whose
    requests keep failing is recorded as failed and the backfill moves on (it stops after
    MAX_FAILED_IN_A_ROW in a row); then BackfillFailed is raised and the run is `failed`,
    though every other window's papers are stored.
    """
    close_interrupted_runs(db)
    run_id = start_run(db, query, kind="backfill")
    report = BackfillReport(run_id=run_id, counts=RunCounts(), requests=0)
    records = {
        (row["window_start"], row["window_end"]): row["status"]
        for row in db["backfill_windows"].rows_where("query = ?", [query])
    }
    done = sorted(key for key, status in records.items() if status == "done")
    pending = deque(plan_windows(since, until))
    state = BackfillProgress(windows_total=len(pending))
    total_results = 0
    failed_in_a_row = 0
    requests_before = client.requests

    def tell(window: Window | None, outcome: str) -> None:
        if outcome not in ("planned", "split"):
            state.windows_done += 1
        if progress is not None:
            progress(window, outcome, state)

    def split(window: Window) -> None:
        pending.extendleft(reversed(window.halves()))
        state.windows_total += 1
        tell(window, "split")

    tell(None, "planned")
    try:
        while pending:
            window = pending.popleft()
            status = records.get(window.key)
            if status == "done" or _covered(window, done):
                report.windows_skipped += 1
                tell(window, "skipped")
                continue
            if status == "split" and window.end > window.start:
                split(window)
                continue
            requests_at_start = client.requests
            papers: list[dict] = []
            unreadable = 0
            try:
                window_total = None
                for feed in client.iter_pages(
                    window.query(query), max_results=query_limit, page_size=min(page_size, query_limit),
                    sort_by="submittedDate", sort_order="ascending",
                ):
                    if window_total is None:
                        window_total = feed.total_results
                        if window_total > query_limit:
                            break
                    papers.extend(feed.papers)
                    unreadable += len(feed.skipped)
            except (FetchError, ArxivAPIError) as error:
                failed_in_a_row += 1
                report.failures.append((window, str(error)))
                log.warning("backfill window %s failed: %s", window, error)
                _record_window(
                    db, query, window, run_id, "failed", requests=client.requests - requests_at_start, error=str(error)
                )
                tell(window, "failed")
                if failed_in_a_row >= MAX_FAILED_IN_A_ROW:
                    break
                continue
            failed_in_a_row = 0
            if window_total > query_limit:
                if window.end == window.start:
                    message = f"more than {query_limit} results submitted in the minute {window}; cannot split further"
                    report.failures.append((window, message))
                    _record_window(db, query, window, run_id, "failed", total_results=window_total, error=message)
                    tell(window, "failed")
                    continue
                _record_window(
                    db, query, window, run_id, "split", total_results=window_total,
                    requests=client.requests - requests_at_start,
                )
                split(window)
                continue
            try:
                with db.atomic():
                    counts = save_papers_bulk(db, run_id, papers, vocabulary=vocabulary)
                    # A window with unreadable entries is still done: arXiv would serve them the same way again.
                    _record_window(
                        db, query, window, run_id, "done", total_results=window_total, papers=counts.fetched,
                        skipped=unreadable, requests=client.requests - requests_at_start,
                    )
                    so_far = report.counts + counts
                    db["runs"].update(
                        run_id,
                        {
                            "fetched": so_far.fetched, "new": so_far.new, "updated": so_far.updated,
                            "refreshed": so_far.refreshed, "requests": client.requests - requests_before,
                            "total_results": total_results + window_total, "skipped": report.unreadable + unreadable,
                        },
                    )
            except sqlite3.Error as error:
                message = f"could not store the window {window} ({error}); the windows before it are stored"
                try:
                    fail_run(db, run_id, message, requests=client.requests - requests_before)
                except sqlite3.Error:
                    log.warning("could not record the failure of run %s either", run_id)
                raise BackfillFailed(report, message) from None
            report.counts = so_far
            total_results += window_total
            report.unreadable += unreadable
            report.windows_fetched += 1
            state.papers_stored += counts.new + counts.updated
            tell(window, "done")
    except KeyboardInterrupt:
        fail_run(db, run_id, INTERRUPTED_BY_USER, requests=client.requests - requests_before)
        raise
    report.requests = client.requests - requests_before
    if report.failures:
        first_window, first_error = report.failures[0]
        stopped = f" (stopped after {MAX_FAILED_IN_A_ROW} failures in a row)" if failed_in_a_row >= MAX_FAILED_IN_A_ROW else ""
        message = (
            f"{len(report.failures)} window{'s' if len(report.failures) != 1 else ''} failed{stopped}, "
            f"first {first_window}: {first_error}; run the same backfill again to retry"
        )
        fail_run(db, run_id, message, requests=report.requests)
        raise BackfillFailed(report, message)
    finish_run(db, run_id, report.counts, requests=report.requests, total_results=total_results, skipped=report.unreadable)
    return report


class TerminalProgress:
    """A click progress bar (windows done of total, papers stored, ETA) for an interactive terminal."""

    def __init__(self):
        import sys

        import click

        # stderr, like the log lines: stdout carries only the summary.
        self.bar = click.progressbar(
            length=1, label="backfill", show_eta=True, show_pos=True, file=sys.stderr,
            item_show_func=lambda papers: None if papers is None else f"{papers} papers stored",
        )

    def __enter__(self) -> "TerminalProgress":
        return self

    def __exit__(self, *exc) -> None:
        if self.bar.entered:
            self.bar.__exit__(*exc)

    def __call__(self, window: Window | None, outcome: str, state: BackfillProgress) -> None:
        self.bar.length = state.windows_total
        if outcome == "planned":
            self.bar.__enter__()  # drawn once the number of windows is known
        else:
            self.bar.update(0 if outcome == "split" else 1, current_item=state.papers_stored)


class LogProgress:
    """One plain line per window, for logs and pipes."""

    def __init__(self, echo: Callable[[str], None]):
        self.echo = echo

    def __enter__(self) -> "LogProgress":
        return self

    def __exit__(self, *exc) -> None:
        pass

    def __call__(self, window: Window | None, outcome: str, state: BackfillProgress) -> None:
        if outcome == "planned":
            self.echo(f"backfill: {state.windows_total} window{'s' if state.windows_total != 1 else ''} planned")
            return
        self.echo(
            f"backfill: window {window} {outcome} ({state.windows_done} of {state.windows_total} windows, "
            f"{state.papers_stored} papers stored)"
        )

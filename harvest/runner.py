"""One harvest run: fetch the query's whole result set, then store it in one transaction."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import sqlite_utils

from .related import update_related
from .fetch import PAGE_SIZE, ArxivClient, FetchError
from .parse import ArxivAPIError
from .store import (
    INTERRUPTED_BY_USER, RunCounts, StoreError, close_interrupted_runs, fail_run, finish_run, save_papers, start_run,
)

log = logging.getLogger(__name__)


class RunFailed(Exception):
    """The run failed and was recorded as failed; no paper of it was stored."""

    def __init__(self, run_id: int, message: str):
        super().__init__(message)
        self.run_id = run_id


@dataclass
class RunReport:
    run_id: int
    counts: RunCounts
    requests: int
    skipped: int
    total_results: int = 0
    scanned: int = 0

    def summary(self) -> str:
        line = (
            f"harvest: {self.counts.new} new, {self.counts.updated} updated, "
            f"{self.counts.unchanged} unchanged ({self.requests} request{'s' if self.requests != 1 else ''})"
        )
        if self.skipped:
            line += f"; {self.skipped} unreadable entr{'ies' if self.skipped != 1 else 'y'} skipped"
        return line

    def notice(self) -> str | None:
        """A warning when the query has more results than one run scans, else None."""
        if self.total_results <= self.scanned:
            return None
        return (
            f"notice: the query has {self.total_results} results; this run scanned the newest {self.scanned} "
            "(arXiv serves at most 30,000 per query, or config max_results): use `ai4mat backfill` for older papers"
        )


class Terminated(BaseException):
    """SIGTERM arrived (a CI timeout, `kill`): unwind like Ctrl-C so the run is recorded."""


@contextmanager
def interruptions_recorded(db: sqlite_utils.Database, run_id: int, requests) -> Iterator[None]:
    """Record the run as interrupted at once on Ctrl-C or SIGTERM, then let the signal end the process.

    Whatever the transaction held is rolled back first (db.atomic() unwinds before this runs), so
    the record is the only write. SIGTERM still ends the process by that signal, as callers expect.
    """
    in_main = threading.current_thread() is threading.main_thread()
    previous = None
    if in_main:
        def on_term(signum, frame):
            raise Terminated()

        previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    except (KeyboardInterrupt, Terminated) as stop:
        try:
            fail_run(db, run_id, INTERRUPTED_BY_USER, requests=requests())
        except sqlite3.Error:
            log.warning("could not record the interruption of run %s", run_id)
        if isinstance(stop, Terminated):
            db.close()
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
        raise
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)


def run_harvest(
    db: sqlite_utils.Database,
    client: ArxivClient,
    query: str,
    *,
    max_results: int | None = None,
    page_size: int = PAGE_SIZE,
    vocabulary=None,
) -> RunReport:
    """Scan every result of `query` and record the run.

    Promise: either every paper of the run is stored and the run is `ok`, or none is and the
    run is `failed` with the error (RunFailed is raised); Ctrl-C or SIGTERM records it as
    interrupted before the process stops. Papers are compared by (arxiv_id,
    version), never by date, so late announcements and old papers that start matching are caught.
    """
    try:
        close_interrupted_runs(db)
        run_id = start_run(db, query)
    except sqlite3.Error as error:
        # Nothing was fetched or stored; a full disk is the usual cause.
        raise StoreError(f"could not record the start of the run ({error})") from None
    with interruptions_recorded(db, run_id, lambda: client.requests):
        try:
            result = client.search(query, max_results=max_results, page_size=page_size)
        except (FetchError, ArxivAPIError) as error:
            fail_run(db, run_id, str(error), requests=client.requests)
            raise RunFailed(run_id, str(error)) from None
        except Exception as error:
            # A bug, not arXiv: record the run as failed rather than leave it `running`, and let it show.
            fail_run(db, run_id, f"unexpected {type(error).__name__}: {error}", requests=client.requests)
            raise
        try:
            with db.atomic():
                counts = save_papers(db, run_id, result.papers, vocabulary=vocabulary)
                # The run's new and updated papers get related papers, and join older papers' lists.
                update_related(db, [arxiv_id for (arxiv_id,) in db.execute("SELECT arxiv_id FROM versions WHERE run_id = ?", [run_id])])
                finish_run(
                    db, run_id, counts, requests=client.requests, total_results=result.total_results,
                    skipped=len(result.skipped),
                )
        except sqlite3.Error as error:
            message = f"could not store the run ({error})"
            try:
                fail_run(db, run_id, message, requests=client.requests)
            except sqlite3.Error:
                log.warning("could not record the failure of run %s either", run_id)
            raise RunFailed(run_id, message) from None
        except Exception as error:
            # Rolled back by db.atomic(); as above, a bug is recorded and shown.
            fail_run(db, run_id, f"unexpected {type(error).__name__}: {error}", requests=client.requests)
            raise
    return RunReport(
        run_id=run_id, counts=counts, requests=client.requests, skipped=len(result.skipped),
        total_results=result.total_results, scanned=len(result.papers) + len(result.skipped),
    )

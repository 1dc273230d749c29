"""Test data made the way the original tracker ran: one daily run per arXiv announcement cycle.

Tests build their runs seconds apart, and runs within one announcement cycle add up to one
day's news (harvest/cycle.py). `one_run_per_cycle` puts each recorded run in a cycle of its
own, as if a day had passed between them: the latest run keeps the cycle it started in, and
each earlier run gets the cycle before the next run's. started_at is left as it was (the
new_this_week query reads it against the real clock).
"""

from __future__ import annotations

import datetime

from harvest.cycle import TIMESTAMP_FORMAT, announcement_cycle, previous_cycle


def one_run_per_cycle(db) -> list[str]:
    """Give every run of `db` its own announcement cycle, in run order; the cycles, oldest first."""
    runs = db.execute("SELECT id, started_at FROM runs ORDER BY id DESC").fetchall()
    if not runs:
        return []
    started = datetime.datetime.strptime(runs[0][1], TIMESTAMP_FORMAT).replace(tzinfo=datetime.timezone.utc)
    cycle = announcement_cycle(started)
    assigned = []
    with db.conn:
        for run_id, _ in runs:
            stored = cycle.strftime(TIMESTAMP_FORMAT)
            db.execute("UPDATE runs SET cycle = ? WHERE id = ?", [stored, run_id])
            assigned.append(stored)
            cycle = previous_cycle(cycle)
    return assigned[::-1]


def the_previous_cycle() -> str:
    """The announcement cycle before the current one, as stored in runs.cycle ("yesterday")."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return previous_cycle(announcement_cycle(now)).strftime(TIMESTAMP_FORMAT)

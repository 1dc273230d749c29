"""Datasette plugin: how fresh the dataset is, for every page (`ai4mat_freshness` in templates).

A successful run is what the `health` query counts: a daily harvest (`kind = 'harvest'`) with
status `ok`; backfills do not count. Older than STALE_HOURS (arXiv announces five days a week,
so three days without one means the daily job stopped) the dataset is stale. Reads only the
`runs` table, through its (status, id) index: two rows per page, whatever the file's size.

Loaded with `datasette --plugins-dir plugins`: imports only Datasette and the standard library.
"""

from __future__ import annotations

import datetime

from datasette import hookimpl

DATABASE = "ai4mat"
STALE_HOURS = 72  # as the health query's "stale"
MAX_ERROR_CHARS = 300  # of the error shown in the message; last_error keeps all of it

LAST_SUCCESS = """
select id, finished_at from runs
where status = 'ok' and kind = 'harvest'
order by id desc limit 1
"""
# The latest daily harvest that failed after the last success (or ever, before one).
LAST_FAILURE = """
select error from runs
where status = 'failed' and kind = 'harvest' and id > :after
order by id desc limit 1
"""


def _parse_time(text: str | None) -> datetime.datetime | None:
    if not text:
        return None
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)


def _ago(hours: float) -> str:
    if hours < 1:
        return "less than an hour ago"
    if hours < 48:
        whole = int(hours)
        return f"{whole} hour{'s' if whole != 1 else ''} ago"
    return f"{int(hours // 24)} days ago"


def _short(error: str) -> str:
    error = " ".join(error.split())
    return error if len(error) <= MAX_ERROR_CHARS else error[:MAX_ERROR_CHARS] + "…"


def describe(last_success_at: str | None, last_error: str | None, now: datetime.datetime) -> dict:
    """The freshness dict for a last successful run's finish time and the latest error since.

    Keys: last_success_at (ISO string or None), age_hours (float or None), stale (no success,
    or the last one older than STALE_HOURS), last_error (str or None), message (one sentence
    to show), level ("ok" or "warning").
    """
    finished = _parse_time(last_success_at)
    if finished is None:
        age_hours = None
        stale = True
        if last_error:
            message = f"No successful harvest yet: last error {_short(last_error)}"
        else:
            message = "No successful harvest yet: the dataset fills after its first daily run"
    else:
        age_hours = round((now - finished).total_seconds() / 3600, 3)
        stale = age_hours > STALE_HOURS
        when = f"{finished.astimezone(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC"
        if stale:
            message = f"Out of date: the last successful daily run was {when}, {_ago(age_hours)}"
        else:
            message = f"Last successful daily run: {when} ({_ago(max(age_hours, 0))})"
        if last_error:
            message += f"; a daily run since failed: {_short(last_error)}"
    message = message.rstrip(".") + "."
    return {
        "last_success_at": last_success_at if finished else None,
        "age_hours": age_hours,
        "stale": stale,
        "last_error": last_error,
        "message": message,
        "level": "warning" if stale else "ok",
    }


async def freshness(datasette, now: datetime.datetime | None = None) -> dict | None:
    """The freshness of the `ai4mat` database, or None where it is not served or has no runs table."""
    if DATABASE not in datasette.databases:
        return None
    db = datasette.get_database(DATABASE)
    if not await db.table_exists("runs"):
        return None
    success = (await db.execute(LAST_SUCCESS)).first()
    failure = (await db.execute(LAST_FAILURE, {"after": success["id"] if success else 0})).first()
    return describe(
        success["finished_at"] if success else None,
        (failure["error"] or "unknown") if failure else None,
        now or datetime.datetime.now(datetime.timezone.utc),
    )


@hookimpl
def extra_template_vars(datasette):
    async def inner():
        return {"ai4mat_freshness": await freshness(datasette)}

    return inner

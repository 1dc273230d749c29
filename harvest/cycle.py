"""arXiv's announcement cycle: what "today" means for the daily news (new_today, the README).

arXiv announces new submissions at 20:00 US Eastern time (America/New_York, so 00:00 UTC in
summer and 01:00 UTC in winter) on Sunday to Thursday evenings, and not on Friday or Saturday
evenings. A cycle runs from one announcement to the next: the Thursday 20:00 cycle lasts until
Sunday 20:00. Every harvest run started within one cycle reports the same day's news.

arXiv also skips announcements on some holidays; its holiday schedule is published ahead each
year and cannot be known offline, so it is not modelled: a holiday evening starts a cycle here
(a run after it simply finds nothing new, and the cycle's papers stay those of its runs).
"""

from __future__ import annotations

import datetime
from zoneinfo import ZoneInfo

ARXIV_ZONE = ZoneInfo("America/New_York")
ANNOUNCEMENT_HOUR = 20
# datetime.weekday(): Monday is 0. No announcement on Friday (4) and Saturday (5) evenings.
NO_ANNOUNCEMENT_WEEKDAYS = frozenset({4, 5})
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def announcement_cycle(instant: datetime.datetime) -> datetime.datetime:
    """The start (UTC) of the announcement cycle holding `instant`: the latest announcement at or before it.

    `instant` must be timezone-aware. 20:00 never falls in a daylight-saving gap or fold (those
    are at 02:00), so each announcement is one exact instant.
    """
    if instant.tzinfo is None:
        raise ValueError("announcement_cycle needs a timezone-aware instant")
    local = instant.astimezone(ARXIV_ZONE)
    day = local.date()
    if local.time() < datetime.time(ANNOUNCEMENT_HOUR):
        day -= datetime.timedelta(days=1)
    while day.weekday() in NO_ANNOUNCEMENT_WEEKDAYS:
        day -= datetime.timedelta(days=1)
    start = datetime.datetime.combine(day, datetime.time(ANNOUNCEMENT_HOUR), tzinfo=ARXIV_ZONE)
    return start.astimezone(datetime.timezone.utc)


def cycle_of(timestamp: str) -> str:
    """The cycle start, as stored in `runs.cycle` ("YYYY-MM-DDTHH:MM:SSZ", UTC), of a stored UTC timestamp."""
    moment = datetime.datetime.strptime(timestamp, TIMESTAMP_FORMAT).replace(tzinfo=datetime.timezone.utc)
    return announcement_cycle(moment).strftime(TIMESTAMP_FORMAT)


def previous_cycle(cycle_start: datetime.datetime) -> datetime.datetime:
    """The start of the cycle before the one starting at `cycle_start`."""
    return announcement_cycle(cycle_start - datetime.timedelta(seconds=1))

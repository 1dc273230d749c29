"""What "today" is: arXiv's announcement cycle, and the day's news adding up over its runs."""

import datetime
import re
from zoneinfo import ZoneInfo

import pytest

from harvest import store
from harvest.cycle import announcement_cycle, cycle_of, previous_cycle
from harvest.fetch import ArxivClient
from harvest.readme import render_section
from harvest.runner import run_harvest
from harvest.store import open_db, writing

from .fake_arxiv import FakeArxiv, make_paper
from .test_site import datasette_for, get_rows


def utc(text: str) -> datetime.datetime:
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)


# (instant, start of its cycle), both UTC. 20:00 New York is 01:00 UTC in winter (EST) and
# 00:00 UTC in summer (EDT); 2026's switches are Sunday 8 March and Sunday 1 November.
CYCLES = [
    # An ordinary week in winter: Monday 20:00 EST until Tuesday 20:00 EST.
    ("2026-11-24T12:00:00Z", "2026-11-24T01:00:00Z"),  # Tuesday morning
    ("2026-11-24T01:00:00Z", "2026-11-24T01:00:00Z"),  # the announcement itself starts the cycle
    ("2026-11-24T00:59:59Z", "2026-11-23T01:00:00Z"),  # a second before: Sunday 20:00's cycle
    # No announcement on Friday and Saturday evenings: Thursday 20:00 lasts until Sunday 20:00.
    ("2026-11-27T12:00:00Z", "2026-11-27T01:00:00Z"),  # Friday
    ("2026-11-28T01:00:00Z", "2026-11-27T01:00:00Z"),  # Friday 20:00 EST
    ("2026-11-28T23:00:00Z", "2026-11-27T01:00:00Z"),  # Saturday
    ("2026-11-29T01:30:00Z", "2026-11-27T01:00:00Z"),  # Saturday 20:30 EST
    ("2026-11-30T00:59:59Z", "2026-11-27T01:00:00Z"),  # Sunday 19:59:59 EST
    ("2026-11-30T01:00:00Z", "2026-11-30T01:00:00Z"),  # Sunday 20:00 EST
    # Summer (EDT).
    ("2026-07-15T00:00:00Z", "2026-07-15T00:00:00Z"),  # Tuesday 20:00 EDT
    ("2026-07-14T23:59:59Z", "2026-07-14T00:00:00Z"),  # Tuesday 19:59:59 EDT: Monday's cycle
    # Clocks go forward at 02:00 on Sunday 8 March: Thursday's cycle is announced in EST, Sunday's in EDT.
    ("2026-03-06T01:00:00Z", "2026-03-06T01:00:00Z"),  # Thursday 5 March 20:00 EST
    ("2026-03-08T07:30:00Z", "2026-03-06T01:00:00Z"),  # Sunday 03:30 EDT, just after the switch
    ("2026-03-08T23:59:59Z", "2026-03-06T01:00:00Z"),  # Sunday 19:59:59 EDT
    ("2026-03-09T00:30:00Z", "2026-03-09T00:00:00Z"),  # Sunday 20:30 EDT (19:30 on a fixed EST clock)
    ("2026-03-10T00:00:00Z", "2026-03-10T00:00:00Z"),  # Monday 20:00 EDT
    # Clocks go back at 02:00 on Sunday 1 November: Thursday's cycle is announced in EDT, Sunday's in EST.
    ("2026-10-30T00:00:00Z", "2026-10-30T00:00:00Z"),  # Thursday 29 October 20:00 EDT
    ("2026-11-01T05:30:00Z", "2026-10-30T00:00:00Z"),  # Sunday 01:30 EDT, the first pass
    ("2026-11-01T06:30:00Z", "2026-10-30T00:00:00Z"),  # Sunday 01:30 EST, the repeated hour
    ("2026-11-02T00:30:00Z", "2026-10-30T00:00:00Z"),  # Sunday 19:30 EST (20:30 on a fixed EDT clock)
    ("2026-11-02T01:00:00Z", "2026-11-02T01:00:00Z"),  # Sunday 20:00 EST
    # Across a year's end.
    ("2026-12-31T12:00:00Z", "2026-12-31T01:00:00Z"),  # Thursday morning: Wednesday's cycle
    ("2027-01-02T12:00:00Z", "2027-01-01T01:00:00Z"),  # Saturday: Thursday 31 December's cycle
]


@pytest.mark.parametrize("instant, start", CYCLES)
def test_announcement_cycle(instant, start):
    assert announcement_cycle(utc(instant)) == utc(start)
    assert cycle_of(instant) == start
    # The same instant in another zone is the same cycle.
    assert announcement_cycle(utc(instant).astimezone(ZoneInfo("Asia/Singapore"))) == utc(start)


@pytest.mark.parametrize("start, before", [
    ("2026-11-30T01:00:00Z", "2026-11-27T01:00:00Z"),  # Sunday's cycle follows Thursday's
    ("2026-11-27T01:00:00Z", "2026-11-26T01:00:00Z"),
    ("2026-03-09T00:00:00Z", "2026-03-06T01:00:00Z"),  # across the switch to EDT
    ("2026-11-02T01:00:00Z", "2026-10-30T00:00:00Z"),  # across the switch to EST
])
def test_previous_cycle(start, before):
    assert previous_cycle(utc(start)) == utc(before)


def test_a_naive_instant_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        announcement_cycle(datetime.datetime(2026, 11, 24, 12))


# ---------------------------------------------------------------- runs of one cycle add up


def harvest_at(path, fake, started_at: str, finished_at: str) -> int:
    """One real harvest of the fake API, recorded as started and finished at the given times."""
    client = ArxivClient(fake.url, delay_seconds=0, max_retries=0, timeout=(2.0, 2.0), sleep=lambda s: None)
    with writing(path) as db:
        report = run_harvest(db, client, "q")
        db["runs"].update(report.run_id, {"started_at": started_at, "cycle": cycle_of(started_at), "finished_at": finished_at})
        return report.run_id


def section(path) -> str:
    db = open_db(path, create=False, writable=False)
    try:
        return render_section(db, zone=ZoneInfo("UTC"), label="UTC")
    finally:
        db.close()


def listed(text: str) -> list[str]:
    return re.findall(r"^\*\*ID:\*\* (\S+)$", text, flags=re.M)


async def today(path) -> list[tuple]:
    rows = await get_rows(datasette_for(path), "/ai4mat/new_today.json")
    return [(row["status"], row["arxiv_id"], row["version"]) for row in rows]


@pytest.mark.asyncio
async def test_runs_of_one_cycle_add_up_and_the_next_cycle_starts_afresh(tmp_path):
    path = tmp_path / "ai4mat.db"
    a, b = make_paper(1, day="2026-11-23"), make_paper(2, day="2026-11-23")
    a2 = {**a, "version": 2, "title": "A, revised", "updated": "2026-11-24T09:00:00Z"}
    c, d, e = (make_paper(n, day="2026-11-24") for n in (3, 4, 5))
    f = make_paper(6, day="2026-11-25")
    with FakeArxiv() as fake:
        # The cycle announced Monday 23 November 20:00 EST (01:00 UTC) lasts until Tuesday's.
        fake.papers = [a, b]
        harvest_at(path, fake, "2026-11-24T03:00:00Z", "2026-11-24T03:01:00Z")
        assert listed(section(path)) == ["2611.00002v1", "2611.00001v1"]

        # A second run the same evening finds three more papers and a new version of one.
        fake.papers = [a2, b, c, d, e]
        harvest_at(path, fake, "2026-11-24T15:00:00Z", "2026-11-24T15:01:00Z")
        union = section(path)
        assert "## New Papers (5)\n\n*Last updated: 2026-11-24 15:01:00 (UTC)*\n\n" in union
        assert listed(union) == ["2611.00001v2", "2611.00005v1", "2611.00004v1", "2611.00003v1", "2611.00002v1"]
        union_rows = [
            ("new", "2611.00001", 2), ("new", "2611.00005", 1), ("new", "2611.00004", 1),
            ("new", "2611.00003", 1), ("new", "2611.00002", 1),
        ]
        assert await today(path) == union_rows

        # A third run, the cycle's last second, finds nothing new: the cycle's papers stay.
        harvest_at(path, fake, "2026-11-25T00:59:59Z", "2026-11-25T01:00:30Z")
        assert section(path) == union.replace("2026-11-24 15:01:00", "2026-11-25 01:00:30")
        assert await today(path) == union_rows

        # The next announcement (Tuesday 20:00 EST) starts a new day: only its papers.
        fake.papers = [a2, b, c, d, e, f, {**b, "version": 2, "updated": "2026-11-25T02:00:00Z"}]
        harvest_at(path, fake, "2026-11-25T01:00:00Z", "2026-11-25T01:02:00Z")
        assert listed(section(path)) == ["2611.00002v2", "2611.00006v1"]
        assert await today(path) == [("updated", "2611.00002", 2), ("new", "2611.00006", 1)]

        # A cycle whose runs found nothing says so.
        harvest_at(path, fake, "2026-11-26T01:30:00Z", "2026-11-26T01:31:00Z")
        assert "## 🥳 No new papers today. Take it easy and recharge!\n\n*Last updated: 2026-11-26 01:31:00 (UTC)*" in section(path)
        assert await today(path) == []


def test_the_cycle_migration_fills_each_recorded_runs_cycle_from_its_start(tmp_path, monkeypatch):
    path = tmp_path / "ai4mat.db"
    # A file at the schema just before this migration (whatever its number after merges).
    before = store.MIGRATIONS.index(store._schema_v7_announcement_cycle)
    with monkeypatch.context() as patch:
        patch.setattr(store, "MIGRATIONS", store.MIGRATIONS[:before])
        patch.setattr(store, "SCHEMA_VERSION", before)
        with writing(path) as db:
            for started_at in ("2026-11-24T03:00:00Z", "2026-11-28T23:00:00Z", "2026-03-09T00:30:00Z", "now"):
                db["runs"].insert({"started_at": started_at, "query": "q", "status": "ok", "kind": "harvest"})
            assert "cycle" not in db["runs"].columns_dict
    with writing(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (store.SCHEMA_VERSION,)
        assert db.execute("SELECT started_at, cycle FROM runs ORDER BY id").fetchall() == [
            ("2026-11-24T03:00:00Z", "2026-11-24T01:00:00Z"),
            ("2026-11-28T23:00:00Z", "2026-11-27T01:00:00Z"),
            ("2026-03-09T00:30:00Z", "2026-03-09T00:00:00Z"),
            ("now", None),  # not a timestamp ai4mat writes: that run is a cycle of its own
        ]
        schema = db.schema
        store._schema_v7_announcement_cycle(db)  # idempotent
        assert db.schema == schema

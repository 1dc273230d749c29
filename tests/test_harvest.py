"""Harvest runs against the fake arXiv API over real HTTP: paging, politeness, versions, failures."""

import json

import pytest

from harvest import __version__
from harvest.runner import RunFailed, run_harvest
from harvest.store import writing

from .conftest import rows
from .fake_arxiv import make_paper


def harvest_once(db_path, client, query="q", **options):
    with writing(db_path) as db:
        return run_harvest(db, client, query, **options)


def test_first_run_pages_politely_and_stores_everything(fake_arxiv, client_for, db_path, sleeps):
    fake_arxiv.papers = [make_paper(n) for n in range(1, 8)]
    client = client_for(fake_arxiv, delay_seconds=3.0)
    report = harvest_once(db_path, client, query='all:"inverse design"', page_size=3)

    assert report.summary() == "harvest: 7 new, 0 updated, 0 unchanged (3 requests)"
    assert [r.params for r in fake_arxiv.requests] == [
        {"search_query": 'all:"inverse design"', "start": str(start), "max_results": str(size),
         "sortBy": "lastUpdatedDate", "sortOrder": "descending"}
        for start, size in [(0, 3), (3, 3), (6, 1)]
    ]
    for request in fake_arxiv.requests:
        assert request.headers["User-Agent"] == f"ai4mat/{__version__}"
        assert request.headers["Accept"] == "application/atom+xml"
    # No wait before the first request; each later one waits what is left of the 3 s.
    assert len(sleeps) == 2 and all(2.5 < wait <= 3.0 for wait in sleeps)

    assert rows(db_path, "select arxiv_id, version, title, authors, categories, first_run, last_run from papers order by arxiv_id")[0] == {
        "arxiv_id": "2611.00001", "version": 1, "title": "Generative model 1 for inverse materials design",
        "authors": '["Author 1 A", "Author 1 B"]', "categories": '["cond-mat.mtrl-sci", "cs.LG"]',
        "first_run": 1, "last_run": 1,
    }
    assert rows(db_path, "select count(*) as n from versions where run_id = 1") == [{"n": 7}]
    run = rows(db_path, "select id, query, status, fetched, new, updated, requests, error, kind, total_results from runs order by id")
    assert run == [{
        "id": 1, "query": 'all:"inverse design"', "status": "ok", "fetched": 7, "new": 7, "updated": 0,
        "requests": 3, "error": None, "kind": "harvest", "total_results": 7,
    }]


def test_second_run_records_new_papers_and_new_versions(fake_arxiv, client_for, db_path):
    fake_arxiv.papers = [make_paper(n) for n in range(1, 5)]
    harvest_once(db_path, client_for(fake_arxiv))
    fake_arxiv.papers[1] = make_paper(2, version=2, day="2026-11-21", title="Generative model 2, revised",
                                      published="2026-11-20T00:00:02Z", journal_ref="Nature 1 (2027)")
    fake_arxiv.papers.append(make_paper(5, day="2026-11-21"))
    report = harvest_once(db_path, client_for(fake_arxiv))

    assert report.summary() == "harvest: 1 new, 1 updated, 3 unchanged (1 request)"
    assert rows(db_path, "select arxiv_id, version, run_id, title, journal_ref from versions where arxiv_id = '2611.00002' order by version") == [
        {"arxiv_id": "2611.00002", "version": 1, "run_id": 1, "title": "Generative model 2 for inverse materials design", "journal_ref": None},
        {"arxiv_id": "2611.00002", "version": 2, "run_id": 2, "title": "Generative model 2, revised", "journal_ref": "Nature 1 (2027)"},
    ]
    assert rows(db_path, "select arxiv_id, version, title, published, updated, first_run, last_run from papers order by arxiv_id") == [
        {"arxiv_id": "2611.00001", "version": 1, "title": "Generative model 1 for inverse materials design",
         "published": "2026-11-20T00:00:01Z", "updated": "2026-11-20T00:00:01Z", "first_run": 1, "last_run": 2},
        {"arxiv_id": "2611.00002", "version": 2, "title": "Generative model 2, revised",
         "published": "2026-11-20T00:00:02Z", "updated": "2026-11-21T00:00:02Z", "first_run": 1, "last_run": 2},
        {"arxiv_id": "2611.00003", "version": 1, "title": "Generative model 3 for inverse materials design",
         "published": "2026-11-20T00:00:03Z", "updated": "2026-11-20T00:00:03Z", "first_run": 1, "last_run": 2},
        {"arxiv_id": "2611.00004", "version": 1, "title": "Generative model 4 for inverse materials design",
         "published": "2026-11-20T00:00:04Z", "updated": "2026-11-20T00:00:04Z", "first_run": 1, "last_run": 2},
        {"arxiv_id": "2611.00005", "version": 1, "title": "Generative model 5 for inverse materials design",
         "published": "2026-11-21T00:00:05Z", "updated": "2026-11-21T00:00:05Z", "first_run": 2, "last_run": 2},
    ]
    assert rows(db_path, "select id, fetched, new, updated from runs order by id") == [
        {"id": 1, "fetched": 4, "new": 4, "updated": 0},
        {"id": 2, "fetched": 5, "new": 1, "updated": 1},
    ]
    # The FTS index follows the revised title.
    assert rows(db_path, "select rowid from papers_fts where papers_fts match 'revised'") == rows(
        db_path, "select rowid from papers where arxiv_id = '2611.00002'"
    )


def test_unchanged_run_adds_nothing_but_the_run(fake_arxiv, client_for, db_path):
    fake_arxiv.papers = [make_paper(n) for n in range(1, 4)]
    harvest_once(db_path, client_for(fake_arxiv))
    report = harvest_once(db_path, client_for(fake_arxiv))
    assert report.summary() == "harvest: 0 new, 0 updated, 3 unchanged (1 request)"
    assert rows(db_path, "select count(*) as n from versions") == [{"n": 3}]
    assert rows(db_path, "select distinct last_run from papers") == [{"last_run": 2}]


def test_paper_announced_days_after_its_updated_stamp_is_caught(fake_arxiv, client_for, db_path):
    """arXiv announces hours to days after `updated`: a run must not skip papers older than its last run."""
    fake_arxiv.papers = [make_paper(n, day="2026-11-20") for n in range(1, 4)]
    harvest_once(db_path, client_for(fake_arxiv))
    # Announced now, though submitted (updated) two days before the first run's newest paper.
    late = make_paper(4, day="2026-11-18")
    fake_arxiv.papers.append(late)
    report = harvest_once(db_path, client_for(fake_arxiv))
    assert (report.counts.new, report.counts.updated) == (1, 0)
    assert rows(db_path, "select arxiv_id, first_run, updated from papers where arxiv_id = '2611.00004'") == [
        {"arxiv_id": "2611.00004", "first_run": 2, "updated": "2026-11-18T00:00:04Z"}
    ]


def test_old_paper_that_starts_matching_is_caught(fake_arxiv, client_for, db_path):
    fake_arxiv.papers = [make_paper(n) for n in range(1, 4)]
    harvest_once(db_path, client_for(fake_arxiv))
    old = make_paper(9, arxiv_id="cond-mat/0102536", day="2001-02-28", categories=["cond-mat.mtrl-sci"])
    fake_arxiv.papers.append(old)
    report = harvest_once(db_path, client_for(fake_arxiv))
    assert report.summary() == "harvest: 1 new, 0 updated, 3 unchanged (1 request)"
    assert rows(db_path, "select arxiv_id, version, published, first_run from papers where first_run = 2") == [
        {"arxiv_id": "cond-mat/0102536", "version": 1, "published": "2001-02-28T00:00:09Z", "first_run": 2}
    ]


def test_max_results_caps_the_scan_to_the_newest(fake_arxiv, client_for, db_path):
    fake_arxiv.papers = [make_paper(n) for n in range(1, 11)]
    report = harvest_once(db_path, client_for(fake_arxiv), max_results=4, page_size=3)
    assert [(r.params["start"], r.params["max_results"]) for r in fake_arxiv.requests] == [("0", "3"), ("3", "1")]
    assert report.counts.new == 4
    assert rows(db_path, "select arxiv_id from papers order by arxiv_id") == [
        {"arxiv_id": f"2611.{n:05d}"} for n in (7, 8, 9, 10)
    ]


def test_duplicate_served_across_pages_is_stored_once(fake_arxiv, client_for, db_path):
    """A paper updated during paging shifts the results: the same version can come twice."""
    fake_arxiv.papers = [make_paper(n) for n in range(1, 5)]
    first_page = fake_arxiv.page({"sortBy": "lastUpdatedDate", "start": "0", "max_results": "2"})[0]
    fake_arxiv.raw_pages[1] = first_page  # 4 and 3
    fake_arxiv.papers.append(make_paper(5))  # the second page is computed after a new arrival: 3 and 2
    report = harvest_once(db_path, client_for(fake_arxiv), page_size=2)
    assert [(r.params["start"]) for r in fake_arxiv.requests] == ["0", "2", "4"]
    assert rows(db_path, "select arxiv_id from papers order by arxiv_id") == [
        {"arxiv_id": f"2611.{n:05d}"} for n in (1, 2, 3, 4)
    ]
    assert report.counts.fetched == 4


def test_same_version_with_new_journal_ref_refreshes_the_paper_only(fake_arxiv, client_for, db_path):
    fake_arxiv.papers = [make_paper(1)]
    harvest_once(db_path, client_for(fake_arxiv))
    fake_arxiv.papers = [make_paper(1, journal_ref="Phys. Rev. B 1, 2 (2027)", doi="10.1103/x")]
    report = harvest_once(db_path, client_for(fake_arxiv))
    assert (report.counts.new, report.counts.updated, report.counts.refreshed) == (0, 0, 1)
    assert rows(db_path, "select journal_ref, doi from papers") == [{"journal_ref": "Phys. Rev. B 1, 2 (2027)", "doi": "10.1103/x"}]
    # The version as first seen is kept as it was.
    assert rows(db_path, "select journal_ref, doi, run_id from versions") == [{"journal_ref": None, "doi": None, "run_id": 1}]
    assert rows(db_path, "select refreshed from runs order by id") == [{"refreshed": 0}, {"refreshed": 1}]


def test_facet_tables_follow_the_current_version(fake_arxiv, client_for, db_path):
    fake_arxiv.papers = [make_paper(1, authors=["A. One", "B. Two"])]
    harvest_once(db_path, client_for(fake_arxiv))
    fake_arxiv.papers = [make_paper(1, version=2, day="2026-11-21", authors=["B. Two", "C. Three", "A. One"],
                                    categories=["cs.LG"], primary_category="cs.LG")]
    harvest_once(db_path, client_for(fake_arxiv))
    assert rows(db_path, "select name from paper_authors order by position") == [
        {"name": "B. Two"}, {"name": "C. Three"}, {"name": "A. One"}
    ]
    assert rows(db_path, "select category from paper_categories") == [{"category": "cs.LG"}]
    assert json.loads(rows(db_path, "select authors from versions where version = 1")[0]["authors"]) == ["A. One", "B. Two"]


@pytest.mark.parametrize("fault", ["http500", "http503", "http429", "http406", "reset", "cut", "truncated", "empty", "html200", "timeout"])
def test_transient_fault_is_retried_and_nothing_differs(fault, fake_arxiv, client_for, db_path, sleeps):
    fake_arxiv.papers = [make_paper(n) for n in range(1, 6)]
    fake_arxiv.faults = {2: fault}
    fake_arxiv.timeout_seconds = 1.5
    report = harvest_once(db_path, client_for(fake_arxiv, delay_seconds=3.0), page_size=2)
    assert report.summary() == "harvest: 5 new, 0 updated, 0 unchanged (4 requests)"
    # The faulted request is asked again at the same place.
    assert [r.params["start"] for r in fake_arxiv.requests] == ["0", "2", "2", "4"]
    if fault in ("http503", "http429"):
        assert sleeps[1] == 3.0  # Retry-After: 1 is below the 3 s backoff, which wins
    assert rows(db_path, "select count(*) as n from papers") == [{"n": 5}]


def test_retry_after_longer_than_backoff_is_honoured(fake_arxiv, client_for, db_path, sleeps):
    fake_arxiv.papers = [make_paper(1)]
    fake_arxiv.faults = {1: "http503"}
    fake_arxiv.retry_after = "20"
    harvest_once(db_path, client_for(fake_arxiv, delay_seconds=3.0))
    assert sleeps == [20.0]


def test_persistent_fault_fails_the_run_and_stores_nothing(fake_arxiv, client_for, db_path, sleeps):
    fake_arxiv.papers = [make_paper(n) for n in range(1, 4)]
    harvest_once(db_path, client_for(fake_arxiv))
    fake_arxiv.papers.append(make_paper(4))
    fake_arxiv.faults = {n: "http503" for n in range(2, 20)}
    with pytest.raises(RunFailed, match=r"^arXiv API answered HTTP 503 \(start=0\) \(gave up after 6 attempts\)$"):
        harvest_once(db_path, client_for(fake_arxiv, delay_seconds=3.0))
    assert sleeps == [3.0, 6.0, 12.0, 24.0, 48.0]
    assert rows(db_path, "select id, status, error, requests from runs order by id") == [
        {"id": 1, "status": "ok", "error": None, "requests": 1},
        {"id": 2, "status": "failed", "error": "arXiv API answered HTTP 503 (start=0) (gave up after 6 attempts)", "requests": 6},
    ]
    assert rows(db_path, "select count(*) as n from papers") == [{"n": 3}]
    # Once arXiv is back, the next run records what was missed.
    fake_arxiv.faults = {}
    report = harvest_once(db_path, client_for(fake_arxiv))
    assert report.summary() == "harvest: 1 new, 0 updated, 3 unchanged (1 request)"


def test_error_feed_fails_the_run_with_arxivs_message(fake_arxiv, client_for, db_path):
    fake_arxiv.papers = [make_paper(1)]
    harvest_once(db_path, client_for(fake_arxiv))
    before = rows(db_path, "select * from papers")
    fake_arxiv.faults = {2: "error_feed"}
    with pytest.raises(RunFailed, match=r"^arXiv API error \(HTTP 400\): incorrect id format for abc$"):
        harvest_once(db_path, client_for(fake_arxiv))
    assert len(fake_arxiv.requests) == 2  # an error feed is not retried
    assert rows(db_path, "select * from papers") == before
    assert rows(db_path, "select status, error from runs where id = 2") == [
        {"status": "failed", "error": "arXiv API error (HTTP 400): incorrect id format for abc"}
    ]


def test_run_left_running_by_a_killed_process_is_marked_interrupted(fake_arxiv, client_for, db_path):
    fake_arxiv.papers = [make_paper(1)]
    with writing(db_path) as db:
        db["runs"].insert({"started_at": "2026-11-21T22:00:00Z", "query": "q", "status": "running", "kind": "harvest"})
    harvest_once(db_path, client_for(fake_arxiv))
    assert rows(db_path, "select id, status, error from runs order by id") == [
        {"id": 1, "status": "failed", "error": "interrupted: the process stopped before the run finished"},
        {"id": 2, "status": "ok", "error": None},
    ]


def test_old_backend_style_is_stored_the_same(fake_arxiv, client_for, tmp_path):
    papers = [make_paper(n) for n in range(1, 4)]
    dumps = []
    for style in ("new", "old"):
        fake_arxiv.papers, fake_arxiv.style = papers, style
        path = tmp_path / f"{style}.db"
        harvest_once(path, client_for(fake_arxiv))
        dumps.append(rows(path, "select arxiv_id, version, title, summary, authors, categories, published, updated from papers"))
    assert dumps[0] == dumps[1]


def test_older_version_seen_later_is_kept_as_history_only(fake_arxiv, client_for, db_path):
    fake_arxiv.papers = [make_paper(1, version=3, day="2026-11-21", title="Third")]
    harvest_once(db_path, client_for(fake_arxiv))
    # A stale replica serves v1 and v2 together with v3.
    fake_arxiv.papers = [make_paper(1, version=3, day="2026-11-21", title="Third"),
                         make_paper(1, version=2, day="2026-11-20", title="Second"),
                         make_paper(1, version=1, day="2026-11-19", title="First")]
    report = harvest_once(db_path, client_for(fake_arxiv))
    assert (report.counts.fetched, report.counts.new, report.counts.updated) == (1, 0, 0)
    assert rows(db_path, "select version, title, run_id from versions order by version") == [
        {"version": 1, "title": "First", "run_id": 2},
        {"version": 2, "title": "Second", "run_id": 2},
        {"version": 3, "title": "Third", "run_id": 1},
    ]
    assert rows(db_path, "select version, title from papers") == [{"version": 3, "title": "Third"}]


def test_two_versions_of_a_new_paper_in_one_run(fake_arxiv, client_for, db_path):
    fake_arxiv.papers = [make_paper(1, version=1, title="First"), make_paper(1, version=2, day="2026-11-21", title="Second")]
    report = harvest_once(db_path, client_for(fake_arxiv))
    assert report.summary() == "harvest: 1 new, 0 updated, 0 unchanged (1 request)"
    assert rows(db_path, "select version, title from papers") == [{"version": 2, "title": "Second"}]
    assert rows(db_path, "select version, run_id from versions order by version") == [
        {"version": 1, "run_id": 1}, {"version": 2, "run_id": 1}
    ]

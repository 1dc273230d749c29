"""Feeds for any interest: feed_search, feed_author, feed_category and feed_tag, read with feedparser
over HTTP from a real `ai4mat serve`.

Each must list what its page lists (the same matching), newest first, and stay a valid Atom feed,
with one placeholder entry, for any parameter at all.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

import feedparser
import pytest

from harvest.store import open_db

from .site_data import build_site_db, load_metadata, load_plugin, serving

# feed -> (its parameter, the page it follows, the page's parameter)
FEEDS = {
    "feed_search": ("q", "search", "q"),
    "feed_author": ("name", "by_author", "name"),
    "feed_category": ("category", "by_category", "category"),
    "feed_tag": ("tag", "by_tag", "tags"),
}
PLACEHOLDER = "No matching papers yet"
HOSTILE = [
    "", " ", '"', '""', "'", "*", "**", "-", "NOT", "<script>alert(1)</script>", "AND (", "NEAR(a b)",
    "title:x OR", ")(", "'; drop table papers; --", "diffus* -", "x" * 5000, "diffusion " * 400,
    "😀 \u00a0 Ünïcödé 材料", "a\x00b", "\x1b[31m", "%", "_", ",,,", "cs.LG,", "Jane Doe\n",
]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    path = tmp_path_factory.mktemp("feeds") / "ai4mat.db"
    build_site_db(path)
    with serving(path, "--immutable") as (_, base, _):
        yield base


def get(base: str, path: str, /, **params: str) -> tuple[int, bytes, str]:
    url = base + path.lstrip("/") + ("?" + urllib.parse.urlencode(params) if params else "")
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read(), response.headers.get("content-type", "")
    except urllib.error.HTTPError as error:
        return error.code, error.read(), error.headers.get("content-type", "")


def read_feed(base: str, feed_name: str, /, **params: str) -> feedparser.FeedParserDict:
    status, body, content_type = get(base, f"/ai4mat/{feed_name}.atom", **params)
    assert status == 200, (feed_name, params, body[:500])
    assert content_type.startswith("application/xml")
    feed = feedparser.parse(body)
    assert not feed.bozo, (feed_name, params, feed.bozo_exception)
    assert feed.entries, (feed_name, params)
    return feed


def page_ids(base: str, page: str, /, **params: str) -> set[str]:
    status, body, _ = get(base, f"/ai4mat/{page}.json", _shape="array", **params)
    assert status == 200, body[:500]
    return {row["arxiv_id"] for row in json.loads(body)}


def feed_ids(feed) -> set[str]:
    return {entry.id.rsplit("/abs/", 1)[1].rsplit("v", 1)[0] for entry in feed.entries if "/abs/" in entry.id}


def entries(feed) -> list[tuple[str, str]]:
    return [(entry.id, entry.title) for entry in feed.entries]


def test_each_feed_lists_its_pages_papers_newest_first(site):
    assert entries(read_feed(site, "feed_search", q="diffusion")) == [
        ("https://arxiv.org/abs/2611.00004v1", 'Crystal <b>diffusion</b> & "quoted" alloys'),
        ("https://arxiv.org/abs/2611.00001v1", "Generative transformers for inverse materials design"),
        ("https://arxiv.org/abs/cond-mat/0102536v1", "Diffusion models for crystal structure prediction"),
    ]
    # A new version is an entry of its own, like in `feed`; run 2 before run 1.
    assert entries(read_feed(site, "feed_category", category="cs.LG")) == [
        ("https://arxiv.org/abs/2611.00002v2", "Graph networks screen perovskite catalysts at scale (v2)"),
        ("https://arxiv.org/abs/2611.00004v1", 'Crystal <b>diffusion</b> & "quoted" alloys'),
        ("https://arxiv.org/abs/2611.00001v1", "Generative transformers for inverse materials design"),
        ("https://arxiv.org/abs/2611.00002v1", "Graph networks screen perovskite catalysts"),
    ]
    feed = read_feed(site, "feed_author", name="Jane Doe")
    assert feed.feed.title == "ArXiv Daily – AI4MAT: author"
    assert entries(feed) == [
        ("https://arxiv.org/abs/2611.00001v1", "Generative transformers for inverse materials design"),
        ("https://arxiv.org/abs/cond-mat/0102536v1", "Diffusion models for crystal structure prediction"),
    ]
    assert feed.entries[1].author == "Jane Doe, John Roe"
    assert feed.entries[1].link == "https://arxiv.org/abs/cond-mat/0102536v1"
    feed = read_feed(site, "feed_tag", tag="alloy")
    assert entries(feed) == [("https://arxiv.org/abs/2611.00004v1", 'Crystal <b>diffusion</b> & "quoted" alloys')]
    assert feed.entries[0].content[0].value == (
        "Diffusion models meet <script>alert(1)</script> battery materials.\n\nTags: alloy, diffusion model"
    )


@pytest.mark.parametrize("feed_name", sorted(FEEDS))
def test_a_feed_matches_what_its_page_matches(site, feed_name):
    """Every paper of the test file came from a daily harvest, so feed and page list the same papers."""
    parameter, page, page_parameter = FEEDS[feed_name]
    values = {
        "feed_search": ["diffusion", "diffusion -crystal", '"inverse materials design"', "GNN", "perovskit*",
                        "graph OR alloys", "transformers NOT generative", "zzzunknown"],
        "feed_author": ["Jane Doe", " Ann Lee ", "Bo Chen", "jane doe", "Jane"],
        "feed_category": ["cs.LG", "cond-mat.mtrl-sci", " physics.comp-ph ", "cs", "CS.LG"],
        "feed_tag": ["alloy", "diffusion model", "alloy, diffusion model", "alloy,MOF", "Alloy"],
    }[feed_name]
    matched = 0
    for value in values:
        expected = page_ids(site, page, **{page_parameter: value})
        feed = read_feed(site, feed_name, **{parameter: value})
        assert feed_ids(feed) == expected, (feed_name, value)
        if not expected:
            assert entries(feed) == [(feed.entries[0].id, PLACEHOLDER)], value
        matched += bool(expected)
    assert matched >= 2  # the comparison is not between empty answers only


def test_feed_tag_takes_the_tags_parameter_of_by_tag_too(site):
    both = entries(read_feed(site, "feed_tag", tags="alloy, diffusion model"))
    assert both == entries(read_feed(site, "feed_tag", tag="alloy, diffusion model")) != []
    assert both[0][1] != PLACEHOLDER


@pytest.mark.parametrize("feed_name", sorted(FEEDS))
def test_hostile_parameters_give_a_valid_feed(site, feed_name):
    parameter = FEEDS[feed_name][0]
    for value in HOSTILE:
        feed = read_feed(site, feed_name, **{parameter: value})
        for entry in feed.entries:
            assert entry.title == PLACEHOLDER or entry.id.startswith("https://arxiv.org/abs/"), (value, entry.title)
    # No parameter at all, and one given twice.
    assert entries(read_feed(site, feed_name))[0][1] == PLACEHOLDER
    status, body, _ = get(site, f"/ai4mat/{feed_name}.atom?{parameter}=x&{parameter}=diffusion")
    assert status == 200 and not feedparser.parse(body).bozo


def test_feeds_of_an_empty_file_hold_the_placeholder(tmp_path):
    path = tmp_path / "ai4mat.db"
    db = open_db(path)
    db["runs"].insert({"started_at": "2026-11-21T22:00:05Z", "query": "q", "status": "failed", "error": "HTTP 503"})
    db.close()
    with serving(path, "--immutable") as (_, base, _):
        for name, (parameter, page, _) in FEEDS.items():
            feed = read_feed(base, name, **{parameter: "diffusion"})
            assert [(e.title, e.updated, e.link) for e in feed.entries] == [
                (PLACEHOLDER, "2026-11-21T22:00:05+00:00", f"/ai4mat/{page}")
            ]


def test_backfilled_papers_are_not_news_and_many_matches_read_the_newest_harvests(tmp_path):
    """2,100 papers match (the feeds then read daily harvests newest first instead of every
    match); a backfill's papers match too but are left out, as in `feed`."""
    path = tmp_path / "ai4mat.db"
    db = open_db(path)
    runs = [(1, "backfill"), *((run_id, "harvest") for run_id in range(2, 23))]
    db["runs"].insert_all(
        {"id": run_id, "started_at": f"2026-11-{run_id:02d}T22:00:00Z", "finished_at": f"2026-11-{run_id:02d}T22:01:00Z",
         "query": "q", "status": "ok", "kind": kind}
        for run_id, kind in runs
    )
    papers, versions, categories, tags = [], [], [], []
    for n in range(2100):
        run_id = 1 if n < 1000 else 2 + (n - 1000) // 55  # 1,000 backfilled, then 55 a day
        arxiv_id = f"2611.{n:05d}"
        updated = f"2026-11-{run_id:02d}T{n % 24:02d}:00:00Z"
        title = f"Alloy paper {n}" if n % 3 else f"Polymer paper {n}"
        common = {"arxiv_id": arxiv_id, "version": 1, "title": title, "summary": "Alloys.", "authors": '["A. Author"]',
                  "categories": '["cond-mat.mtrl-sci"]', "updated": updated}
        papers.append({**common, "primary_category": "cond-mat.mtrl-sci", "published": updated, "first_run": run_id, "last_run": run_id})
        versions.append({**{k: common[k] for k in ("arxiv_id", "version", "title", "summary", "authors", "categories", "updated")}, "run_id": run_id})
        categories.append({"arxiv_id": arxiv_id, "position": 0, "category": "cond-mat.mtrl-sci", "updated": updated})
        tags.append({"arxiv_id": arxiv_id, "kind": "material", "tag": "alloy", "mentions": 1, "in_title": 1,
                     "vocabulary_version": "test", "updated": updated})
    with db.conn:
        db["papers"].insert_all(papers)
        db["versions"].insert_all(versions)
        db["paper_categories"].insert_all(categories)
        db["paper_tags"].insert_all(tags)
    db.close()
    harvested = [v for v in versions if v["run_id"] > 1]
    newest = sorted(harvested, key=lambda v: (v["run_id"], v["updated"], v["arxiv_id"]), reverse=True)
    expected_all = [f"https://arxiv.org/abs/{v['arxiv_id']}v1" for v in newest[:50]]
    expected_polymer = [f"https://arxiv.org/abs/{v['arxiv_id']}v1" for v in newest if v["title"].startswith("Polymer")][:50]
    with serving(path, "--immutable") as (_, base, _):
        for name, params in (("feed_search", {"q": "alloys"}), ("feed_category", {"category": "cond-mat.mtrl-sci"}),
                             ("feed_tag", {"tag": "alloy"})):
            assert [entry.id for entry in read_feed(base, name, **params).entries] == expected_all, name
        # 700 match: read from the matches; the same order.
        assert [entry.id for entry in read_feed(base, "feed_search", q="polymer").entries] == expected_polymer
        expected_alloy = [f"https://arxiv.org/abs/{v['arxiv_id']}v1" for v in newest if v["title"].startswith("Alloy")][:50]
        assert [entry.id for entry in read_feed(base, "feed_search", q="alloys -polymer").entries] == expected_alloy
        # Only a word to leave out: the daily harvests' newest papers without it, as on the page.
        for q in ("-polymer", "NOT polymer", "-polymers"):
            assert [entry.id for entry in read_feed(base, "feed_search", q=q).entries] == expected_alloy, q
        assert [entry.title for entry in read_feed(base, "feed_search", q="-alloys").entries] == [PLACEHOLDER]
    # The newest 20,000 papers are read from the index as one range; beyond 100,000 matches an
    # older paper is asked of the index on its own. The same SQL with the bounds lowered (2,000
    # to 5, 100,000 to 10, and 0 to 1,000 papers in the range) must give the same entries.
    sql = load_metadata()["databases"]["ai4mat"]["queries"]["feed_search"]["sql"]
    recent = "coalesce(max(rowid), 0) - 20000 as low"
    assert [sql.count(bound) for bound in ("<= 2000", "> 2000", "<= 100000", "limit 100001", recent)] == [1, 1, 1, 1, 1]
    per_paper = (sql.replace("<= 2000", "<= 5").replace("> 2000", "> 5")
                 .replace("<= 100000", "<= 10").replace("limit 100001", "limit 11"))
    db = open_db(path)
    load_plugin().prepare_connection(db.conn)
    try:
        for papers_in_range in (20000, 1000, 5, 0):
            lowered = per_paper.replace(recent, f"coalesce(max(rowid), 0) - {papers_in_range} as low")
            for q, expected in (("alloys", expected_all), ("polymer", expected_polymer), ("-polymer", expected_alloy)):
                assert [row[0] for row in db.execute(lowered, {"q": q})] == expected, (q, papers_in_range)
        # Words to leave out are looked for among the newest 2,000 harvested versions only.
        window, bound = "v.arxiv_id desc\n  limit 2000", recent
        assert sql.count(window) == 1
        newest_five = [f"https://arxiv.org/abs/{v['arxiv_id']}v1" for v in newest[:5] if v["title"].startswith("Alloy")]
        assert len(newest_five) == 4  # one of the newest five is a polymer paper
        for papers_in_range in (1000, 5, 1, 0):
            lowered = sql.replace(window, "v.arxiv_id desc\n  limit 5").replace(bound, f"coalesce(max(rowid), 0) - {papers_in_range} as low")
            assert [row[0] for row in db.execute(lowered, {"q": "-polymer"})] == newest_five, papers_in_range
    finally:
        db.close()

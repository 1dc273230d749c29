"""The published site: metadata.yml, every canned query and the search plugin, through Datasette in process."""

from __future__ import annotations

import datetime
import json
import re
import shutil
import sqlite3
import urllib.parse

import feedparser
import markupsafe
import pytest
import sqlite_utils
from datasette.app import Datasette

from harvest.config import load_config
from harvest.store import open_db

from .cycles import one_run_per_cycle
from .site_data import PLUGINS_DIR, ROOT, load_metadata, load_plugin

QUERIES = (
    "new_today", "new_this_week", "search", "by_author", "by_category", "by_tag", "by_elements", "with_code",
    "paper_history", "related", "runs", "papers_per_month", "feed", "health",
    "feed_search", "feed_author", "feed_category", "feed_tag",
)
HOSTILE = ['"', "AND (", "*", "'; drop", "title:x OR", "NEAR(a b)", ")(", "-", "a\x00b", "😀 \u00a0", '""""', "'", "^x"]


def datasette_for(path) -> Datasette:
    """The site as served: the file immutable, with the metadata, plugins and templates."""
    return Datasette(
        [], immutables=[str(path)], metadata=load_metadata(), plugins_dir=str(PLUGINS_DIR),
        template_dir=str(PLUGINS_DIR.parent / "templates"),
    )


async def get_rows(ds: Datasette, path: str) -> list[dict]:
    response = await ds.client.get(path + ("&" if "?" in path else "?") + "_shape=array")
    assert response.status_code == 200, response.text
    return response.json()


# ---------------------------------------------------------------- metadata.yml


def test_metadata_describes_the_dataset():
    metadata = load_metadata()
    assert metadata["license"] == "CC0 1.0 (arXiv metadata)"
    assert metadata["license_url"] == "https://creativecommons.org/publicdomain/zero/1.0/"
    assert metadata["source"] == "arXiv API"
    assert metadata["source_url"].startswith("https://info.arxiv.org/help/api")
    # Rendered for config.json (harvest/site_config.py; tests/test_site_links.py): its query, no made-up links.
    assert str(markupsafe.escape(load_config(ROOT / "config.json").query)) in metadata["description_html"]
    assert "fly.dev" not in str(metadata) and "github.com/ai4mat" not in str(metadata)
    database = metadata["databases"]["ai4mat"]
    assert sorted(database["queries"]) == sorted(QUERIES)
    for name, query in database["queries"].items():
        assert query["title"] and query["description"], name


def test_metadata_describes_every_column_of_the_schema():
    db = sqlite_utils.Database(memory=True)
    from harvest.store import ensure_db_shape

    ensure_db_shape(db)
    tables = load_metadata()["databases"]["ai4mat"]["tables"]
    for table in db.table_names():
        if table.startswith("papers_fts"):  # the search index: hidden, described by the papers table
            continue
        assert tables[table]["description"], table
        assert sorted(tables[table]["columns"]) == sorted(db[table].columns_dict), table
    assert tables["papers"]["sort_desc"] == "updated"
    assert tables["papers"]["facets"] == [
        {"counted": {"column": "primary_category",
                     "counts_sql": "select primary_category, sum(papers) from primary_month_counts group by 1"}},
        {"child": {"table": "paper_categories", "column": "category", "query": "by_category", "parameter": "category",
                   "counts_sql": "select category, papers from category_counts"}},
        {"child": {"table": "paper_tags", "column": "tag", "query": "by_tag", "parameter": "tags",
                   "counts_sql": "select tag, sum(papers) from tag_year_counts group by tag"}},
        {"child": {"table": "paper_elements", "column": "element", "query": "by_elements", "parameter": "elements"}},
        {"child": "paper_links.kind"},
    ]


# ---------------------------------------------------------------- canned queries, literal rows


@pytest.mark.asyncio
async def test_new_today_is_the_latest_successful_run(site_db):
    # Run 3 failed, so "today" is run 2: one new paper and one new version.
    rows = await get_rows(datasette_for(site_db), "/ai4mat/new_today.json")
    assert rows == [
        {
            "status": "updated", "arxiv_id": "2611.00002", "version": 2,
            "title": "Graph networks screen perovskite catalysts at scale", "authors": "Bo Chen",
            "primary_category": "cs.LG", "tags": "catalyst, perovskite, graph neural network",
            "published": "2026-11-19T09:30:00Z", "updated": "2026-11-21T07:00:00Z",
            "link": "https://arxiv.org/abs/2611.00002v2",
        },
        {
            "status": "new", "arxiv_id": "2611.00004", "version": 1,
            "title": 'Crystal <b>diffusion</b> & "quoted" alloys', "authors": "Ann Lee",
            "primary_category": "cond-mat.mtrl-sci", "tags": "alloy, diffusion model",
            "published": "2026-10-02T06:00:00Z",
            "updated": "2026-11-21T06:00:00Z", "link": "https://arxiv.org/abs/2611.00004v1",
        },
    ]


@pytest.mark.asyncio
async def test_new_this_week_covers_runs_of_the_last_seven_days(site_db, tmp_path):
    rows = await get_rows(datasette_for(site_db), "/ai4mat/new_this_week.json")
    assert [(r["status"], r["arxiv_id"], r["version"], r["run_id"]) for r in rows] == [
        ("updated", "2611.00002", 2, 2),
        ("new", "2611.00004", 1, 2),
        ("new", "2611.00001", 1, 1),
        ("new", "2611.00002", 1, 1),
        ("new", "cond-mat/0102536", 1, 1),
    ]
    assert rows[2]["link"] == "https://arxiv.org/abs/2611.00001v1"
    # Move run 1 back eight days: its papers leave the week.
    older = tmp_path / "ai4mat.db"
    shutil.copy(site_db, older)
    eight_days_ago = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=8)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with sqlite3.connect(older) as conn:
        conn.execute("UPDATE runs SET started_at = ? WHERE id = 1", [eight_days_ago])
    rows = await get_rows(datasette_for(older), "/ai4mat/new_this_week.json")
    assert [(r["arxiv_id"], r["version"]) for r in rows] == [("2611.00002", 2), ("2611.00004", 1)]


@pytest.mark.asyncio
async def test_search_ranks_highlights_and_returns_paper_fields(site_db):
    rows = await get_rows(datasette_for(site_db), "/ai4mat/search.json?q=diffusion")
    relevance = [row.pop("relevance") for row in rows]
    assert relevance == sorted(relevance, reverse=True) and all(r > 0 for r in relevance)
    assert rows == [
        {
            "arxiv_id": "cond-mat/0102536", "version": 1, "title": "Diffusion models for crystal structure prediction",
            "snippet": "Score-based **diffusion** generates stable crystals.", "authors": "Jane Doe, John Roe",
            "primary_category": "cond-mat.mtrl-sci", "published": "2001-02-28T12:00:00Z",
            "updated": "2001-02-28T12:00:00Z", "link": "https://arxiv.org/abs/cond-mat/0102536",
        },
        {
            "arxiv_id": "2611.00004", "version": 1, "title": 'Crystal <b>diffusion</b> & "quoted" alloys',
            "snippet": "**Diffusion** models meet <script>alert(1)</script> battery materials.", "authors": "Ann Lee",
            "primary_category": "cond-mat.mtrl-sci", "published": "2026-10-02T06:00:00Z",
            "updated": "2026-11-21T06:00:00Z", "link": "https://arxiv.org/abs/2611.00004",
        },
        {
            "arxiv_id": "2611.00001", "version": 1, "title": "Generative transformers for inverse materials design",
            "snippet": "A transformer proposes alloys; **diffusion** is not used.", "authors": "Jane Doe, Ann Lee",
            "primary_category": "cond-mat.mtrl-sci", "published": "2026-11-20T08:00:00Z",
            "updated": "2026-11-20T08:00:00Z", "link": "https://arxiv.org/abs/2611.00001",
        },
    ]


@pytest.mark.asyncio
async def test_search_any_word_ranks_stemmed_prefixes_need_four_letters_and_minus_excludes(site_db):
    ds = datasette_for(site_db)

    async def ids(q):
        response = await ds.client.get("/ai4mat/search.json", params={"q": q, "_shape": "array"})
        assert response.status_code == 200, response.text
        return [row["arxiv_id"] for row in response.json()]

    # Any word may match; the paper with both words ranks first.
    assert await ids("perovskite screen") == ["2611.00002"]
    assert (await ids("perovskites diffusion"))[0] == "2611.00002"
    assert sorted(await ids("perovskites diffusion")) == ["2611.00001", "2611.00002", "2611.00004", "cond-mat/0102536"]
    assert await ids("crystals") == ["cond-mat/0102536", "2611.00004"]  # porter: crystal(s)
    assert await ids("perovsk*") == ["2611.00002"]
    assert await ids("per*") == []  # too short for a prefix: the word "per" itself
    assert (await ids("crystal-structure"))[0] == "cond-mat/0102536"  # the words as written rank first
    # -word and NOT word leave papers out; a quoted phrase is required.
    assert await ids("alloys -diffusion") == []
    assert await ids("alloys NOT transformer") == ["2611.00004"]
    assert await ids('"battery materials" diffusion') == ["2611.00004"]
    # A quoted phrase nobody wrote does not empty the answer: its words are searched instead.
    assert sorted(await ids('"no such phrase" alloys')) == ["2611.00001", "2611.00004"]
    # Stop words alone mean nothing.
    assert await ids("the of and") == []


@pytest.mark.asyncio
@pytest.mark.parametrize("q", HOSTILE)
async def test_hostile_search_input_never_errors(site_db, q):
    ds = datasette_for(site_db)
    response = await ds.client.get("/ai4mat/search.json", params={"q": q, "_shape": "array"})
    assert response.status_code == 200, response.text
    # Operators and punctuation are plain text; only a real word matches: the "b" of a <b> tag.
    expected = ["2611.00004"] if q in ("NEAR(a b)", "a\x00b") else []
    assert [row["arxiv_id"] for row in response.json()] == expected
    # Around a real word, the rest changes nothing but the order.
    response = await ds.client.get("/ai4mat/search.json", params={"q": f"{q} alloys {q}", "_shape": "array"})
    assert response.status_code == 200, response.text
    assert sorted(row["arxiv_id"] for row in response.json()) == ["2611.00001", "2611.00004"]


@pytest.mark.asyncio
async def test_search_without_q_is_empty_not_an_error(site_db):
    assert await get_rows(datasette_for(site_db), "/ai4mat/search.json") == []


@pytest.mark.asyncio
async def test_table_search_uses_the_fts_index(site_db):
    rows = await get_rows(datasette_for(site_db), "/ai4mat/papers.json?_search=diffusion&_col=title")
    assert rows == [
        {"arxiv_id": "2611.00004", "title": 'Crystal <b>diffusion</b> & "quoted" alloys'},
        {"arxiv_id": "2611.00001", "title": "Generative transformers for inverse materials design"},
        {"arxiv_id": "cond-mat/0102536", "title": "Diffusion models for crystal structure prediction"},
    ]


@pytest.mark.asyncio
async def test_by_author_finds_a_name_in_any_case(site_db):
    ds = datasette_for(site_db)
    rows = await get_rows(ds, "/ai4mat/by_author.json?name=Jane%20Doe")
    assert rows == [
        {
            "arxiv_id": "2611.00001", "version": 1, "title": "Generative transformers for inverse materials design",
            "author": "Jane Doe", "authors": "Jane Doe, Ann Lee", "primary_category": "cond-mat.mtrl-sci",
            "published": "2026-11-20T08:00:00Z", "updated": "2026-11-20T08:00:00Z",
            "link": "https://arxiv.org/abs/2611.00001",
        },
        {
            "arxiv_id": "cond-mat/0102536", "version": 1, "title": "Diffusion models for crystal structure prediction",
            "author": "Jane Doe", "authors": "Jane Doe, John Roe", "primary_category": "cond-mat.mtrl-sci",
            "published": "2001-02-28T12:00:00Z", "updated": "2001-02-28T12:00:00Z",
            "link": "https://arxiv.org/abs/cond-mat/0102536",
        },
    ]
    assert await get_rows(ds, "/ai4mat/by_author.json?name=jane+doe") == rows
    assert await get_rows(ds, "/ai4mat/by_author.json?name=DOE") == rows
    assert [r["arxiv_id"] for r in await get_rows(ds, "/ai4mat/by_author.json?name=Ann%20Lee")] == ["2611.00004", "2611.00001"]
    # A given name alone is no surname.
    assert await get_rows(ds, "/ai4mat/by_author.json?name=Jane") == []


@pytest.mark.asyncio
async def test_by_category_includes_cross_lists(site_db):
    ds = datasette_for(site_db)
    rows = await get_rows(ds, "/ai4mat/by_category.json?category=cs.LG")
    assert [(r["arxiv_id"], r["version"], r["primary_category"]) for r in rows] == [
        ("2611.00002", 2, "cs.LG"), ("2611.00004", 1, "cond-mat.mtrl-sci"), ("2611.00001", 1, "cond-mat.mtrl-sci"),
    ]
    rows = await get_rows(ds, "/ai4mat/by_category.json?category=physics.comp-ph")
    assert rows == [
        {
            "arxiv_id": "cond-mat/0102536", "version": 1, "title": "Diffusion models for crystal structure prediction",
            "authors": "Jane Doe, John Roe", "primary_category": "cond-mat.mtrl-sci",
            "published": "2001-02-28T12:00:00Z", "updated": "2001-02-28T12:00:00Z",
            "link": "https://arxiv.org/abs/cond-mat/0102536", "category": "physics.comp-ph", "category_papers": 1,
            "next_page": None,
        }
    ]
    assert await get_rows(ds, "/ai4mat/by_category.json?category=nope") == []


@pytest.mark.asyncio
@pytest.mark.parametrize("before", ["abc", ",", "'", "~", "2026-11-21T07:00:00Z", "\x00", "a,b,c", "😀"])
async def test_by_category_takes_any_before_without_error(site_db, before):
    response = await datasette_for(site_db).client.get(
        "/ai4mat/by_category.json", params={"category": "cs.LG", "before": before, "_shape": "array"}
    )
    assert response.status_code == 200, response.text
    # Rows older than the (garbled) bound, possibly none; never rows outside the category.
    assert {row["category"] for row in response.json()} <= {"cs.LG"}


def paged_db(path) -> list[str]:
    """250 cs.LG papers (ties in `updated`, some without one) and 100 cs.AI ones, saved by the store.

    Returns the cs.LG arxiv_ids in by_category's order: newest update first, then by arxiv_id
    descending, papers without an update time last.
    """
    from harvest import store

    from .fake_arxiv import make_paper

    papers = []
    for n in range(1, 251):
        # Papers n, n + 12 and n + 24 share an update time; every 40th has none (arXiv sent an
        # unreadable one): ties and nulls are where keyset paging could skip or repeat a paper.
        updated = None if n % 40 == 0 else f"2026-{1 + n % 12:02d}-{1 + n // 36:02d}T00:00:00Z"
        categories = ["cs.LG", "cs.AI"] if n <= 100 else ["cs.LG"]
        papers.append(make_paper(n, updated=updated, published="2026-01-01T00:00:00Z", categories=categories))
    papers.append(make_paper(999, categories=["physics.comp-ph"]))
    with store.writing(path) as db:
        run_id = store.start_run(db, "q")
        with db.atomic():
            store.save_papers(db, run_id, papers)
            store.finish_run(db, run_id, store.RunCounts())
    in_category = [paper for paper in papers if "cs.LG" in paper["categories"]]
    dated = sorted((paper for paper in in_category if paper["updated"]), key=lambda p: (p["updated"], p["arxiv_id"]), reverse=True)
    undated = sorted((paper for paper in in_category if not paper["updated"]), key=lambda p: p["arxiv_id"], reverse=True)
    return [paper["arxiv_id"] for paper in dated + undated]


@pytest.mark.asyncio
async def test_paging_through_by_category_returns_every_paper_once_in_order(tmp_path):
    expected = paged_db(tmp_path / "ai4mat.db")
    ds = datasette_for(tmp_path / "ai4mat.db")
    seen, pages, before = [], [], ""
    while before is not None:
        rows = await get_rows(ds, "/ai4mat/by_category.json?" + urllib.parse.urlencode({"category": "cs.LG", "before": before}))
        assert {(row["category"], row["category_papers"]) for row in rows} == {("cs.LG", 250)}
        assert all(row["next_page"] is None for row in rows[:-1])
        seen += [row["arxiv_id"] for row in rows]
        pages.append(len(rows))
        before = rows[-1]["next_page"]
    assert pages == [100, 100, 50]
    assert seen == expected
    # A category of exactly one page has no next page.
    rows = await get_rows(ds, "/ai4mat/by_category.json?category=cs.AI")
    assert (len(rows), rows[-1]["next_page"], rows[0]["category_papers"]) == (100, None, 100)


@pytest.mark.asyncio
async def test_by_category_page_links_to_the_next_page(tmp_path):
    expected = paged_db(tmp_path / "ai4mat.db")
    ds = datasette_for(tmp_path / "ai4mat.db")
    # The table view (?_table=1): the last row's next_page cell links to the next page.
    html = (await ds.client.get("/ai4mat/by_category?category=cs.LG&_table=1")).text
    links = re.findall(r'<td class="col-next_page"><a href="([^"]+)">next page</a></td>', html)
    assert len(links) == 1 and html.count('<td class="col-next_page">') == 100
    assert '<td class="col-category_papers">250</td>' in html
    href = links[0].replace("&amp;", "&")
    assert urllib.parse.parse_qs(href[1:]) == {"category": ["cs.LG"], "before": [f"{_updated_of(html, 100)},{expected[99]}"]}
    second = await get_rows(ds, "/ai4mat/by_category.json" + href)
    assert [row["arxiv_id"] for row in second] == expected[100:200]
    # The list of papers links to the same next page.
    listing = (await ds.client.get("/ai4mat/by_category?category=cs.LG")).text
    assert '<p class="list-count">100 papers of 250 in cs.LG</p>' in listing
    assert re.findall(r'<p class="next-page"><a href="([^"]+)" rel="next">', listing) == [links[0]]


def _updated_of(html: str, row: int) -> str:
    return re.findall(r'<td class="col-updated">([^<]*)</td>', html)[row - 1]


@pytest.mark.asyncio
async def test_paper_history_lists_every_version_with_its_run(site_db):
    rows = await get_rows(datasette_for(site_db), "/ai4mat/paper_history.json?arxiv_id=2611.00002")
    seen_at = [row.pop("seen_at") for row in rows]
    assert all(len(stamp) == 20 and stamp.endswith("Z") for stamp in seen_at)
    assert rows == [
        {
            "arxiv_id": "2611.00002", "version": 1, "title": "Graph networks screen perovskite catalysts",
            "authors": "Bo Chen", "primary_category": "cs.LG", "published": "2026-11-19T09:30:00Z",
            "updated": "2026-11-19T09:30:00Z", "link": "https://arxiv.org/abs/2611.00002v1", "run_id": 1,
        },
        {
            "arxiv_id": "2611.00002", "version": 2, "title": "Graph networks screen perovskite catalysts at scale",
            "authors": "Bo Chen", "primary_category": "cs.LG", "published": "2026-11-19T09:30:00Z",
            "updated": "2026-11-21T07:00:00Z", "link": "https://arxiv.org/abs/2611.00002v2", "run_id": 2,
        },
    ]


@pytest.mark.asyncio
async def test_runs_include_failures(site_db):
    rows = await get_rows(datasette_for(site_db), "/ai4mat/runs.json")
    assert [
        (r["id"], r["kind"], r["status"], r["fetched"], r["new"], r["updated"], r["requests"], r["error"]) for r in rows
    ] == [
        (3, "harvest", "failed", None, None, None, 1, "arXiv API error (HTTP 400): incorrect id format for abc"),
        (2, "harvest", "ok", 4, 1, 1, 1, None),
        (1, "harvest", "ok", 3, 3, 0, 1, None),
    ]


@pytest.mark.asyncio
async def test_papers_per_month(site_db):
    rows = await get_rows(datasette_for(site_db), "/ai4mat/papers_per_month.json")
    assert rows == [
        {"month": "2026-11", "papers": 2, "updated_since": 1},
        {"month": "2026-10", "papers": 1, "updated_since": 0},
        {"month": "2001-02", "papers": 1, "updated_since": 0},
    ]
    # The query before month_counts, on the file the harvester wrote over two runs.
    conn = sqlite3.connect(site_db)
    old = conn.execute(
        "select substr(published, 1, 7) as month, count(*) as papers, sum(version > 1) as updated_since "
        "from papers group by month order by month desc"
    ).fetchall()
    conn.close()
    assert [tuple(row.values()) for row in rows] == old


@pytest.mark.asyncio
async def test_feed_is_valid_atom_newest_first(site_db):
    response = await datasette_for(site_db).client.get("/ai4mat/feed.atom")
    assert response.status_code == 200
    feed = feedparser.parse(response.content)
    assert not feed.bozo, feed.bozo_exception
    assert feed.feed.title == "ArXiv Daily – AI4MAT"
    assert [(e.id, e.title, e.updated, e.link) for e in feed.entries] == [
        ("https://arxiv.org/abs/2611.00002v2", "Graph networks screen perovskite catalysts at scale (v2)", "2026-11-21T07:00:00+00:00", "https://arxiv.org/abs/2611.00002v2"),
        ("https://arxiv.org/abs/2611.00004v1", 'Crystal <b>diffusion</b> & "quoted" alloys', "2026-11-21T06:00:00+00:00", "https://arxiv.org/abs/2611.00004v1"),
        ("https://arxiv.org/abs/2611.00001v1", "Generative transformers for inverse materials design", "2026-11-20T08:00:00+00:00", "https://arxiv.org/abs/2611.00001v1"),
        ("https://arxiv.org/abs/2611.00002v1", "Graph networks screen perovskite catalysts", "2026-11-19T09:30:00+00:00", "https://arxiv.org/abs/2611.00002v1"),
        ("https://arxiv.org/abs/cond-mat/0102536v1", "Diffusion models for crystal structure prediction", "2001-02-28T12:00:00+00:00", "https://arxiv.org/abs/cond-mat/0102536v1"),
    ]
    assert feed.entries[1].author == "Ann Lee"
    assert feed.entries[1].content[0].value == (
        "Diffusion models meet <script>alert(1)</script> battery materials.\n\nTags: alloy, diffusion model"
    )


@pytest.mark.asyncio
async def test_every_query_answers_on_an_empty_database_and_the_feed_stays_valid(tmp_path):
    path = tmp_path / "ai4mat.db"
    open_db(path).close()
    ds = datasette_for(path)
    params = "q=alloy&name=Jane%20Doe&category=cs.LG&arxiv_id=2611.00001&tags=MOF&elements=Li,O&tag=MOF"
    for name in QUERIES:
        # The feeds answer their placeholder entry and health one row, on purpose (health: test_export).
        if not name.startswith("feed") and name != "health":
            assert await get_rows(ds, f"/ai4mat/{name}.json?{params}") == [], name
    response = await ds.client.get("/ai4mat/feed.atom")
    assert response.status_code == 200, response.text
    feed = feedparser.parse(response.content)
    assert not feed.bozo
    assert [(e.title, e.updated) for e in feed.entries] == [("No papers yet", "2026-01-01T00:00:00+00:00")]


@pytest.mark.asyncio
async def test_only_failed_runs_give_an_empty_today_and_a_placeholder_feed(tmp_path):
    path = tmp_path / "ai4mat.db"
    db = open_db(path)
    db["runs"].insert({"started_at": "2026-11-21T22:00:05Z", "query": "q", "status": "failed", "error": "HTTP 503"})
    db.close()
    ds = datasette_for(path)
    assert await get_rows(ds, "/ai4mat/new_today.json") == []
    feed = feedparser.parse((await ds.client.get("/ai4mat/feed.atom")).content)
    assert [(e.title, e.updated) for e in feed.entries] == [("No papers yet", "2026-11-21T22:00:05+00:00")]


# ---------------------------------------------------------------- HTML: links and escaping


@pytest.mark.asyncio
async def test_query_pages_link_ids_to_tilde_encoded_row_pages(site_db):
    ds = datasette_for(site_db)
    html = (await ds.client.get("/ai4mat/by_author?name=Jane+Doe&_table=1")).text
    assert '<a href="/ai4mat/papers/cond-mat~2F0102536">cond-mat/0102536</a>' in html
    assert '<a href="/ai4mat/papers/2611~2E00001">2611.00001</a>' in html
    # The list of papers links each title there.
    listing = (await ds.client.get("/ai4mat/by_author?name=Jane+Doe")).text
    assert '<a href="/ai4mat/papers/cond-mat~2F0102536">Diffusion models for crystal structure prediction</a>' in listing
    assert '<a href="/ai4mat/papers/2611~2E00001">Generative transformers for inverse materials design</a>' in listing
    for href in ("/ai4mat/papers/cond-mat~2F0102536", "/ai4mat/papers/2611~2E00001"):
        rows = await get_rows(ds, href + ".json")
        assert [row["arxiv_id"] for row in rows] == [href.rsplit("/", 1)[1].replace("~2F", "/").replace("~2E", ".")]


@pytest.mark.asyncio
async def test_search_page_marks_matches_and_escapes_abstracts(site_db):
    html = (await datasette_for(site_db).client.get("/ai4mat/search?q=diffusion")).text
    assert "<mark>Diffusion</mark> models meet &lt;script&gt;alert(1)&lt;/script&gt; battery materials." in html
    assert "<script>alert(1)" not in html
    assert "Crystal &lt;b&gt;diffusion&lt;/b&gt; &amp; &#34;quoted&#34; alloys" in html


# ---------------------------------------------------------------- the FTS query function and the search bound


def test_fts_query_quotes_every_word():
    fts_query = load_plugin().fts_query
    assert fts_query("graph neural networks") == '"graph" "neural" "networks"'
    assert fts_query('NEAR(a b) OR title:"x"') == '"NEAR" "a" "b" "OR" "title" "x"'
    assert fts_query("diffus* ab*") == '"diffus"* "ab"'
    assert fts_query("Li-ion 2D/3D it's") == '"Li-ion" "2D/3D" "it\'s"'
    assert fts_query("") == fts_query(None) == fts_query("\"'*();") == '""'


def test_search_ranks_every_match_not_only_the_newest(tmp_path):
    """Relevance over the whole dataset: the oldest papers that match in the title rank with the newest."""
    path = tmp_path / "ai4mat.db"
    db = open_db(path)
    db["runs"].insert({"id": 1, "started_at": "2026-11-21T22:00:05Z", "query": "q", "status": "ok"})
    rows = []
    for n in range(300):
        # The 25 oldest and the 25 newest match in the title (most relevant), the rest only in the abstract.
        title = "Alloy design" if n < 25 or n >= 275 else f"Paper {n:04d}"
        rows.append({
            "arxiv_id": f"2611.{n:05d}", "version": 1, "title": title, "summary": "An alloy study.",
            "authors": "[]", "categories": "[]", "first_run": 1, "last_run": 1,
        })
    with db.conn:
        db["papers"].insert_all(rows)
    sql = load_metadata()["databases"]["ai4mat"]["queries"]["search"]["sql"]
    plugin = load_plugin()
    plugin.prepare_connection(db.conn)
    found = [row[0] for row in db.execute(sql, {"q": "alloy"})]
    db.close()
    # The 50 title matches, oldest included; equal scores, newest first. Without embeddings
    # (none stored here) the order is bm25's.
    assert found == [f"2611.{n:05d}" for n in [*range(299, 274, -1), *range(24, -1, -1)]]


@pytest.mark.asyncio
async def test_news_queries_agree_with_the_readme(tmp_path):
    """new_today, new_this_week and feed list what the README lists: the latest daily harvest's
    papers at their newest version; a later backfill and stale old versions are not news."""
    from zoneinfo import ZoneInfo

    from harvest.readme import render_section
    from harvest.store import finish_run, save_papers, start_run

    from .fake_arxiv import make_paper

    path = tmp_path / "ai4mat.db"
    db = open_db(path)

    def run(kind, papers):
        run_id = start_run(db, "q", kind=kind)
        with db.atomic():
            finish_run(db, run_id, save_papers(db, run_id, [{**p, "abs_url": None, "pdf_url": None} for p in papers]))

    run("harvest", [make_paper(1, version=3, title="Third")])
    run("harvest", [make_paper(1, version=1, title="First"), make_paper(2, version=1, title="B1"),
                    make_paper(2, version=2, day="2026-11-21", title="B2")])
    run("backfill", [make_paper(9, day="2001-01-01", title="Old backfilled")])
    one_run_per_cycle(db)  # daily runs on successive days
    section = render_section(db, zone=ZoneInfo("UTC"))
    db.close()
    ds = datasette_for(path)
    today = await get_rows(ds, "/ai4mat/new_today.json")
    assert [(r["status"], r["arxiv_id"], r["version"], r["title"]) for r in today] == [("new", "2611.00002", 2, "B2")]
    assert "## New Papers (1)\n" in section and "### 1. B2\n" in section
    week = await get_rows(ds, "/ai4mat/new_this_week.json")
    assert [(r["arxiv_id"], r["version"], r["run_id"]) for r in week] == [("2611.00002", 2, 2), ("2611.00001", 3, 1)]
    feed = feedparser.parse((await ds.client.get("/ai4mat/feed.atom")).content)
    assert [e.title for e in feed.entries] == ["B2", "Third"]


def tagged_db(path) -> dict[str, list[str]]:
    """230 papers with tags and elements from their titles, with shared and missing update times
    as in paged_db. Returns each by_tag / by_elements argument's arxiv_ids in the pages' order."""
    from harvest import store

    from .fake_arxiv import make_paper

    papers = []
    for n in range(1, 231):
        updated = None if n % 40 == 0 else f"2026-{1 + n % 12:02d}-{1 + n // 36:02d}T00:00:00Z"
        title = "A graph neural network" + (" with DFT" if n % 2 else "") + (" for LiFePO4 cathodes" if n % 3 == 0 else "")
        papers.append(make_paper(n, updated=updated, title=title, summary="Nothing else.", published="2026-01-01T00:00:00Z"))
    with store.writing(path) as db:
        run_id = store.start_run(db, "q")
        with db.atomic():
            store.save_papers(db, run_id, papers)
            store.finish_run(db, run_id, store.RunCounts())

    def in_order(chosen: list[dict]) -> list[str]:
        dated = sorted((p for p in chosen if p["updated"]), key=lambda p: (p["updated"], p["arxiv_id"]), reverse=True)
        undated = sorted((p for p in chosen if not p["updated"]), key=lambda p: p["arxiv_id"], reverse=True)
        return [paper["arxiv_id"] for paper in dated + undated]

    return {
        "graph neural network": in_order(papers),
        "DFT, graph neural network": in_order([p for p in papers if "DFT" in p["title"]]),
        "Li-Fe-P-O": in_order([p for p in papers if "LiFePO4" in p["title"]]),
    }


@pytest.mark.asyncio
@pytest.mark.parametrize("query, parameter, value, pages", [
    ("by_tag", "tags", "graph neural network", [100, 100, 30]),
    ("by_tag", "tags", "DFT, graph neural network", [100, 15]),
    ("by_elements", "elements", "Li-Fe-P-O", [76]),
])
async def test_paging_through_by_tag_and_by_elements_returns_every_paper_once_in_order(tmp_path, query, parameter, value, pages):
    # One page of 1,000 rows took 440-710 ms to render as HTML at 1M papers; pages of 100 read
    # from the (tag, updated, arxiv_id) index cost the same wherever they start.
    expected = tagged_db(tmp_path / "ai4mat.db")[value]
    ds = datasette_for(tmp_path / "ai4mat.db")
    seen, sizes, before = [], [], ""
    while before is not None:
        rows = await get_rows(ds, f"/ai4mat/{query}.json?" + urllib.parse.urlencode({parameter: value, "before": before}))
        assert all(row["next_page"] is None for row in rows[:-1])
        seen += [row["arxiv_id"] for row in rows]
        sizes.append(len(rows))
        before = rows[-1]["next_page"]
    assert (sizes, seen) == (pages, expected)
    # The list page links to the next page when there is one.
    listing = (await ds.client.get(f"/ai4mat/{query}?" + urllib.parse.urlencode({parameter: value}))).text
    assert len(re.findall(r'<p class="next-page"><a href="([^"]+)" rel="next">', listing)) == (len(pages) > 1)


def test_word_counts_are_shared_by_connections_to_one_file_and_start_afresh_at_a_commit(tmp_path):
    """Datasette opens one connection per SQL thread: each counting a query's words for itself
    made its first request on each of them slow at a million papers. Counts and plans are kept
    per file state, so a second connection reuses them, and a commit (new papers) recounts."""
    path = tmp_path / "ai4mat.db"
    db = open_db(path)
    db["runs"].insert({"id": 1, "started_at": "2026-11-21T22:00:05Z", "query": "q", "status": "ok"})

    def add(numbers):
        with db.conn:
            db["papers"].insert_all({
                "arxiv_id": f"2611.{n:05d}", "version": 1, "title": "Alloy design", "summary": "An alloy study.",
                "authors": "[]", "categories": "[]", "first_run": 1, "last_run": 1,
            } for n in numbers)

    add(range(3))
    plugin = load_plugin()
    first, second = (plugin.Searcher(sqlite3.connect(path)) for _ in range(2))
    issued = []
    second.conn.set_trace_callback(issued.append)
    first.search("alloy")
    assert first.count('"alloy"') == 3
    second.search("alloy")
    assert not any("count(*)" in sql for sql in issued)  # the first connection's counts were used
    assert second.plan("alloy") is first.plan("alloy")
    add(range(3, 5))
    issued.clear()
    assert second.count('"alloy"') == 5  # the commit changed the file: counted again
    assert any("count(*)" in sql for sql in issued)
    assert first.plan("alloy") is second.plan("alloy")
    assert [rowid for rowid, _ in json.loads(first.search("alloy"))] == [5, 4, 3, 2, 1]
    first.conn.close(), second.conn.close()
    db.close()


def test_snippet_marks_every_form_of_the_query_s_words_in_the_densest_window():
    """The snippet is the window of 24 words holding the most of the query's words, each marked
    as written. A word whose stem begins differently ("ray" -> "rai", "key" -> "kei") was missed
    before; a letter that lower-cases longer ("İ") keeps every mark in place."""
    conn = sqlite3.connect(":memory:")
    conn.execute("create table papers (summary)")
    conn.execute("create virtual table papers_fts using fts5(title, summary)")
    searcher = load_plugin().Searcher(conn)
    text = "We measure X-ray diffraction of 40 oxides. " + "Filler words here. " * 10 + (
        "Then KEY results: powder X-rays diffracted strongly by İstanbul samples.")
    assert searcher.snippet(text, "x-ray diffraction key") == (
        "…here. Filler words here. Filler words here. Filler words here. Filler words here. Then **KEY** results: "
        "**powder** **X**-**rays** **diffracted** strongly by İstanbul samples."
    )
    assert searcher.snippet("İİ ray diffraction", "x-ray diffraction") == "İİ **ray** **diffraction**"
    assert searcher.snippet("Diffusion diffuses; DIFFUSIVE diff", "diffus*") == "**Diffusion** **diffuses**; **DIFFUSIVE** diff"
    assert (searcher.snippet("", "x"), searcher.snippet("—…", "x"), searcher.snippet(None, "x")) == ("", "—…", None)
    conn.close()


def papers_titled(path, titles):
    """A new file with one run and a paper per title, 2611.00000 onwards (rowid n + 1), abstract "A study."."""
    db = open_db(path)
    db["runs"].insert({"id": 1, "started_at": "2026-11-21T22:00:05Z", "query": "q", "status": "ok"})
    with db.conn:
        db["papers"].insert_all({
            "arxiv_id": f"2611.{n:05d}", "version": 1, "title": title, "summary": "A study.",
            "authors": "[]", "categories": "[]", "first_run": 1, "last_run": 1,
        } for n, title in enumerate(titles))
    return db


def test_a_query_of_only_words_to_leave_out_lists_the_newest_papers_without_them(tmp_path):
    """`-polymer` (or `NOT polymer`) has a meaningful word: it answers the newest papers that do
    not mention it (any form: "polymers"), not nothing."""
    db = papers_titled(tmp_path / "ai4mat.db", ["Polymers by design", "Alloy design", "A polymer electrolyte",
                                                "Perovskite screening", "Alloy polymer blends"])
    sql = load_metadata()["databases"]["ai4mat"]["queries"]["search"]["sql"]
    load_plugin().prepare_connection(db.conn)
    answer = lambda q: [row[0] for row in db.execute(sql, {"q": q})]
    assert answer("-polymer") == answer("NOT polymer") == ["2611.00003", "2611.00001"]
    assert answer("-polymer -alloy") == ["2611.00003"]
    assert answer("-study") == []  # every paper has it
    db.close()


def test_an_element_symbol_is_not_read_as_the_acronym_spelled_the_same():
    """"Al" is aluminium and "Ga" gallium; "AL" is active learning and "GA" a genetic algorithm,
    and "active learning" does not search "al" (every aluminium paper). Lattice (a crystal's) is
    not an architected truss, and zinc is not a synonym of calcium."""
    plugin = load_plugin()
    groups = lambda q: plugin.parse_query(q)["groups"]
    assert groups("Al Ga Sr") == [['"al"'], ['"ga"'], ['"sr"'], ['"al ga"'], ['"ga sr"']]
    assert groups("AL") == [['"al"', '"active learning"']]
    assert groups("GA") == [['"ga"', '"genetic algorithm"', '"evolutionary algorithm"']]
    assert groups("Tc")[0] == ['"tc"', '"critical temperature"', '"transition temperature"']
    assert groups("critical temperature")[0] == ['"critical temperature"', '"tc"', '"transition temperature"']
    # Spelled out, the term does not search its element-like acronym, which would match the element.
    assert groups("active learning") == [['"active learning"']]
    assert groups("thermoelectric") == [['"thermoelectric"', '"zt"', '"figure of merit"']]
    assert groups("genetic algorithm")[0] == ['"genetic algorithm"', '"evolutionary"']  # not '"ga"'
    assert groups("Li-ion Al-doped")[:4] == [['"li"'], ['"ion"'], ['"al"'], ['"doped"']]
    assert groups("lattice thermal conductivity")[:3] == [['"lattice"'], ['"thermal"'], ['"conductivity"']]
    # The group without the terms that contain a shorter one; the words as typed rank as a phrase.
    assert groups("architected lattices") == [['"lattice metamaterial"', '"architected"', '"truss"'], ['"architected lattices"']]
    assert groups("zinc") == [['"zinc"']]


def test_bm25_scores_the_rarest_words_within_the_match_budget_and_else_takes_the_newest(tmp_path):
    """The cost bound at a million papers: words join the bm25 query rarest first while their
    matches stay within MATCH_BUDGET; a query whose every word has more matches takes the newest
    papers having it, never nothing."""
    db = papers_titled(tmp_path / "ai4mat.db", ["Zeolite"] * 5 + ["Perovskite"] * 20 + ["Alloy"] * 60 + ["Other"] * 115)
    plugin = load_plugin()
    plugin.MATCH_BUDGET = 30
    searcher = plugin.Searcher(db.conn)
    plan = searcher.plan("alloy perovskite zeolite")
    # A phrase is estimated by its rarest word: "perovskite zeolite" 5, "alloy perovskite" 20.
    assert (plan["match"], plan["newest"]) == ('"zeolite" OR "perovskite zeolite" OR "perovskite"', False)
    plan = searcher.plan("alloy")
    assert (plan["match"], plan["newest"]) == ('"alloy"', True)
    assert [rowid for rowid, _ in json.loads(searcher.search("alloy"))] == list(range(85, 35, -1))
    db.close()


def test_papers_holding_the_elements_a_query_names_rank_higher(tmp_path):
    """"Li cathode": a paper whose Li is only in a formula (LiCoO2, one word to the index) but
    among its extracted elements outranks equal matches without Li; "AL cathode" names no element."""
    db = papers_titled(tmp_path / "ai4mat.db", ["Cathode design", "Cathode design", "Cathode design"])
    with db.conn:
        db["paper_elements"].insert_all([
            {"arxiv_id": "2611.00000", "element": "Li", "updated": "2026-11-21T22:00:05Z"},
            {"arxiv_id": "2611.00000", "element": "Co", "updated": "2026-11-21T22:00:05Z"},
            {"arxiv_id": "2611.00002", "element": "Na", "updated": "2026-11-21T22:00:05Z"},
        ])
    searcher = load_plugin().Searcher(db.conn)
    assert searcher.plan("Li cathode")["elements"] == ["Li"]
    assert [rowid for rowid, _ in json.loads(searcher.search("Li cathode"))] == [1, 3, 2]
    assert [rowid for rowid, _ in json.loads(searcher.search("Li Na cathode"))] == [3, 1, 2]
    assert searcher.plan("AL cathode")["elements"] == []
    # English words and prefixes spelled like symbols are not elements to favour.
    assert searcher.plan("In situ As grown I think Co-design Re-examining Li-ion Pt/C")["elements"] == ["Li", "Pt", "C"]
    assert [rowid for rowid, _ in json.loads(searcher.search("cathode"))] == [3, 2, 1]
    db.close()

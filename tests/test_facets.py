"""The child-table facet plugin (plugins/ai4mat_facets.py): counts, links and rendering, in process."""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
import urllib.parse

import pytest
from datasette.app import Datasette

from .site_data import PLUGINS_DIR, load_metadata
from .test_site import datasette_for

CATEGORIES = "paper_categories.category"
pytestmark = pytest.mark.asyncio


async def facets_of(ds, path: str) -> dict:
    response = await ds.client.get(path)
    assert response.status_code == 200, response.text
    return response.json()["facet_results"]


def counts(facet: dict) -> list[tuple[str, int]]:
    return [(value["value"], value["count"]) for value in facet["results"]]


async def arxiv_ids(ds, url: str) -> list[str]:
    parts = urllib.parse.urlsplit(url)
    response = await ds.client.get(parts.path + "?" + parts.query + "&_shape=array&_col=arxiv_id")
    assert response.status_code == 200, response.text
    return sorted(row["arxiv_id"] for row in response.json())


async def test_child_facet_counts_every_category_of_the_papers(site_db):
    facets = await facets_of(datasette_for(site_db), "/ai4mat/papers.json")
    facet = facets[CATEGORIES]
    assert facet["type"] == "child"
    assert counts(facet) == [("cond-mat.mtrl-sci", 4), ("cs.LG", 3), ("physics.comp-ph", 1)]
    assert counts(facets["primary_category"]) == [("cond-mat.mtrl-sci", 3), ("cs.LG", 1)]


async def test_child_facet_counts_only_the_filtered_papers(site_db):
    facets = await facets_of(datasette_for(site_db), "/ai4mat/papers.json?primary_category=cond-mat.mtrl-sci")
    assert counts(facets[CATEGORIES]) == [("cond-mat.mtrl-sci", 3), ("cs.LG", 2), ("physics.comp-ph", 1)]
    facets = await facets_of(datasette_for(site_db), "/ai4mat/papers.json?_search=diffusion")
    assert counts(facets[CATEGORIES]) == [("cond-mat.mtrl-sci", 3), ("cs.LG", 2), ("physics.comp-ph", 1)]


async def test_a_value_link_on_the_papers_page_opens_the_category_query(site_db):
    # metadata.yml sends a click on the unfiltered papers page to by_category: a _through page
    # took 1.7-4.0 s at a million papers (benchmarks/RESULTS.md, section 6).
    ds = datasette_for(site_db)
    facet = (await facets_of(ds, "/ai4mat/papers.json"))[CATEGORIES]
    link = {value["value"]: value["toggle_url"] for value in facet["results"]}
    assert link == {
        "cond-mat.mtrl-sci": "http://localhost/ai4mat/by_category?category=cond-mat.mtrl-sci",
        "cs.LG": "http://localhost/ai4mat/by_category?category=cs.LG",
        "physics.comp-ph": "http://localhost/ai4mat/by_category?category=physics.comp-ph",
    }
    assert not any(value["selected"] for value in facet["results"])
    for category, expected in (
        ("cs.LG", ["2611.00002", "2611.00004", "2611.00001"]),
        ("cond-mat.mtrl-sci", ["2611.00002", "2611.00004", "2611.00001", "cond-mat/0102536"]),
        ("physics.comp-ph", ["cond-mat/0102536"]),
    ):
        parts = urllib.parse.urlsplit(link[category])
        response = await ds.client.get(parts.path + ".json?" + parts.query + "&_shape=array")
        assert response.status_code == 200, response.text
        rows = response.json()
        # Exactly the category's papers, newest update first, with how many there are.
        assert [row["arxiv_id"] for row in rows] == expected
        assert {(row["category"], row["category_papers"]) for row in rows} == {(category, len(expected))}
        assert all(row["next_page"] is None for row in rows)
        html = await ds.client.get(parts.path + "?" + parts.query)
        assert html.status_code == 200
        count = len(expected)
        assert f'<p class="list-count">{count} paper{"" if count == 1 else "s"} of {count} in {category}</p>' in html.text


async def test_on_a_filtered_page_a_value_link_opens_the_category_query_too(site_db):
    # A _through link there would match the wrong rows: Datasette 0.65 names its parameter p0
    # like the column filter's (this page with ?_through= for physics.comp-ph lists no paper).
    ds = datasette_for(site_db)
    facet = (await facets_of(ds, "/ai4mat/papers.json?primary_category=cond-mat.mtrl-sci"))[CATEGORIES]
    assert [(value["value"], value["toggle_url"]) for value in facet["results"]] == [
        ("cond-mat.mtrl-sci", "http://localhost/ai4mat/by_category?category=cond-mat.mtrl-sci"),
        ("cs.LG", "http://localhost/ai4mat/by_category?category=cs.LG"),
        ("physics.comp-ph", "http://localhost/ai4mat/by_category?category=physics.comp-ph"),
    ]


async def test_without_a_query_a_value_link_filters_the_papers_and_a_second_click_unselects_it(site_db):
    ds = datasette_for(site_db)
    authors = "paper_authors.name"
    facet = (await facets_of(ds, f"/ai4mat/papers.json?_facet_child={authors}"))[authors]
    link = {value["value"]: value["toggle_url"] for value in facet["results"]}
    assert await arxiv_ids(ds, link["Bo Chen"]) == ["2611.00002"]
    assert await arxiv_ids(ds, link["Jane Doe"]) == ["2611.00001", "cond-mat/0102536"]

    parts = urllib.parse.urlsplit(link["Jane Doe"])
    selected = (await facets_of(ds, parts.path + "?" + parts.query))[authors]
    assert [(v["value"], v["count"], v["selected"]) for v in selected["results"]] == [
        ("Jane Doe", 2, True), ("Ann Lee", 1, False), ("John Roe", 1, False),
    ]
    unselect = urllib.parse.urlsplit(selected["results"][0]["toggle_url"])
    assert unselect.path == "/ai4mat/papers.json" and unselect.query == f"_facet_child={authors}"
    both = urllib.parse.urlsplit(selected["results"][1]["toggle_url"])
    assert await arxiv_ids(ds, selected["results"][1]["toggle_url"]) == ["2611.00001"]
    assert urllib.parse.parse_qs(both.query)["_through"] == [
        '{"table":"paper_authors","column":"name","value":"Jane Doe"}',
        '{"table":"paper_authors","column":"name","value":"Ann Lee"}',
    ]


async def test_the_facet_renders_on_the_html_page(site_db):
    response = await datasette_for(site_db).client.get("/ai4mat/papers")
    assert response.status_code == 200
    html = response.text
    assert "<strong>paper_categories.category (child)" in html
    assert '<li><a href="http://localhost/ai4mat/by_category?category=cs.LG">cs.LG</a> 3</li>' in html
    assert "timed out" not in html.lower()
    response = await datasette_for(site_db).client.get("/ai4mat/papers?_facet_child=paper_authors.name")
    link = "/ai4mat/papers?_facet_child=paper_authors.name&amp;_through=" + urllib.parse.quote_plus(
        '{"table":"paper_authors","column":"name","value":"Bo Chen"}'
    )
    assert f'<li><a href="http://localhost{link}">Bo Chen</a> 1</li>' in response.text


async def test_any_child_table_can_be_asked_for_in_the_query_string(site_db):
    facets = await facets_of(datasette_for(site_db), "/ai4mat/papers.json?_facet_child=paper_authors.name")
    assert counts(facets["paper_authors.name"]) == [("Ann Lee", 2), ("Jane Doe", 2), ("Bo Chen", 1), ("John Roe", 1)]
    assert facets["paper_authors.name"]["hideable"] is True


@pytest.mark.parametrize(
    "spec, problem",
    [
        ("runs.status", "runs has no foreign key to papers"),
        ("paper_categories.nope", "paper_categories has no column nope"),
        ("nonsense", "expected child_table.column"),
        ("no_such_table.x", "expected child_table.column"),
    ],
)
async def test_a_facet_that_is_not_a_child_column_is_a_bad_request(site_db, spec, problem):
    response = await datasette_for(site_db).client.get(f"/ai4mat/papers.json?_facet_child={spec}")
    assert response.status_code == 400
    assert response.json()["error"] == f"_facet_child={spec}: {problem}"


async def test_whole_table_counts_are_kept_per_file(site_db, tmp_path):
    # Counts of an unfiltered page are computed once per immutable file (at startup); another
    # file of the same name served in the same process must get its own.
    other = tmp_path / "ai4mat.db"
    shutil.copy(site_db, other)
    with sqlite3.connect(other) as conn:
        conn.execute(
            "INSERT INTO paper_categories (arxiv_id, position, category, updated) "
            "VALUES ('2611.00002', 9, 'physics.comp-ph', '2026-11-21T07:00:00Z')"
        )
    first = await facets_of(datasette_for(site_db), "/ai4mat/papers.json")
    second = await facets_of(datasette_for(other), "/ai4mat/papers.json")
    again = await facets_of(datasette_for(site_db), "/ai4mat/papers.json")
    assert counts(first[CATEGORIES]) == counts(again[CATEGORIES]) == [
        ("cond-mat.mtrl-sci", 4), ("cs.LG", 3), ("physics.comp-ph", 1),
    ]
    assert counts(second[CATEGORIES]) == [("cond-mat.mtrl-sci", 4), ("cs.LG", 3), ("physics.comp-ph", 2)]


async def test_counts_within_one_primary_category_come_from_startup_and_match_the_sql(site_db):
    # A click on primary_category is answered from counts made at startup; the same filter with
    # a second, always-true condition goes through SQL. Both must agree, for every value.
    ds = datasette_for(site_db)
    for primary in ("cond-mat.mtrl-sci", "cs.LG", "nope"):
        cached = await facets_of(ds, f"/ai4mat/papers.json?primary_category={primary}")
        by_sql = await facets_of(ds, f"/ai4mat/papers.json?primary_category={primary}&version__gte=1")
        assert counts(cached[CATEGORIES]) == counts(by_sql[CATEGORIES]), primary
    cached = await facets_of(ds, "/ai4mat/papers.json?primary_category=cs.LG")
    assert counts(cached[CATEGORIES]) == [("cond-mat.mtrl-sci", 1), ("cs.LG", 1)]
    assert counts((await facets_of(ds, "/ai4mat/papers.json?primary_category=nope"))[CATEGORIES]) == []


async def test_the_papers_page_and_a_primary_category_click_read_no_category_rows(site_db):
    from datasette.app import Datasette

    from .site_data import PLUGINS_DIR, load_metadata

    ds = Datasette([], immutables=[str(site_db)], metadata=load_metadata(), plugins_dir=str(PLUGINS_DIR),
                   settings={"trace_debug": True})
    for query, reads in (("", 0), ("primary_category=cs.LG", 0), ("primary_category=cs.LG&version__gte=1", 1)):
        response = await ds.client.get(f"/ai4mat/papers.json?{query}&_trace=1")
        traces = response.json()["_trace"]["traces"]
        assert sum("paper_categories" in trace["sql"] for trace in traces) == reads, query


def live_datasette_for(path) -> Datasette:
    """The site as `ai4mat serve` serves a writable file: mutable, no startup counts."""
    return Datasette([str(path)], metadata=load_metadata(), plugins_dir=str(PLUGINS_DIR),
                     template_dir=str(PLUGINS_DIR.parent / "templates"))


async def test_unfiltered_category_and_tag_counts_come_from_the_count_tables(site_db, tmp_path):
    # At a million papers counting every category or tag row took 172-364 ms, over the facet
    # limit when served live; the store keeps category_counts and tag_year_counts exact.
    path = tmp_path / "ai4mat.db"
    shutil.copy(site_db, path)
    with sqlite3.connect(path) as conn:
        by_category = conn.execute(
            "select category, count(*) from paper_categories group by 1 order by 2 desc, 1").fetchall()
        by_tag = conn.execute("select tag, count(*) from paper_tags group by 1 order by 2 desc, 1").fetchall()
        by_primary = conn.execute(
            "select primary_category, count(*) from papers group by 1 order by 2 desc, 1").fetchall()
    assert by_tag, "the site data has tags"
    facets = await facets_of(live_datasette_for(path), "/ai4mat/papers.json")
    assert counts(facets[CATEGORIES]) == by_category
    assert counts(facets["paper_tags.tag"]) == by_tag
    assert counts(facets["primary_category"]) == by_primary
    assert [value["toggle_url"] for value in facets["primary_category"]["results"]] == [
        f"http://localhost/ai4mat/papers.json?primary_category={urllib.parse.quote(value)}" for value, _ in by_primary
    ]
    # Read from the tables, not counted: a count table changed by hand shows.
    with sqlite3.connect(path) as conn:
        conn.execute("update category_counts set papers = papers + 100 where category = 'physics.comp-ph'")
        conn.execute("update primary_month_counts set papers = papers + 100 where primary_category = 'cs.LG'")
    facets = await facets_of(live_datasette_for(path), "/ai4mat/papers.json")
    assert counts(facets[CATEGORIES])[0] == ("physics.comp-ph", by_category[-1][1] + 100)
    assert counts(facets["primary_category"])[0] == ("cs.LG", dict(by_primary)["cs.LG"] + 100)
    # A filtered page counts its rows as Datasette does.
    facets = await facets_of(live_datasette_for(path), "/ai4mat/papers.json?primary_category=cs.LG")
    assert counts(facets["primary_category"]) == [("cs.LG", dict(by_primary)["cs.LG"])]
    assert facets["primary_category"]["results"][0]["selected"] is True
    # A file without the table (an older schema) is counted as before.
    with sqlite3.connect(path) as conn:
        conn.execute("drop table category_counts")
    facets = await facets_of(live_datasette_for(path), "/ai4mat/papers.json")
    assert counts(facets[CATEGORIES]) == by_category
    # A filtered page counts its own papers.
    facets = await facets_of(live_datasette_for(path), "/ai4mat/papers.json?primary_category=cond-mat.mtrl-sci")
    assert counts(facets[CATEGORIES]) == [("cond-mat.mtrl-sci", 3), ("cs.LG", 2), ("physics.comp-ph", 1)]


async def test_the_markdown_cell_hook_goes_only_when_no_column_needs_it(site_db, tmp_path):
    # datasette-render-markdown read the plugin configuration for every cell (~48 ms of a 100-row
    # papers page at a million papers) though no column here is markdown. In a process of its
    # own: the hook registry is global.
    import subprocess
    import sys

    notes = tmp_path / "notes.db"
    with sqlite3.connect(notes) as conn:
        conn.execute("create table notes (id integer primary key, body_markdown text)")
        conn.execute("insert into notes (body_markdown) values ('**bold**')")
    script = f"""
import asyncio
from datasette.app import Datasette
from datasette.plugins import pm
from tests.site_data import PLUGINS_DIR, load_metadata

def hooked():
    return "render_markdown" in [pm.get_name(impl.plugin) for impl in pm.hook.render_cell.get_hookimpls()]

async def main():
    notes = Datasette([{str(notes)!r}], plugins_dir=str(PLUGINS_DIR))
    await notes.invoke_startup()
    page = (await notes.client.get("/notes/notes")).text
    print(hooked(), "<strong>bold</strong>" in page)
    site = Datasette([], immutables=[{str(site_db)!r}], metadata=load_metadata(), plugins_dir=str(PLUGINS_DIR))
    await site.invoke_startup()
    print(hooked(), (await site.client.get("/ai4mat/papers")).status_code)

asyncio.run(main())
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=PLUGINS_DIR.parent, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split("\n")[:2] == ["True True", "False 200"]


def _settle(path) -> None:
    """Make the file and its -wal look unwritten for a minute (the state is named only then)."""
    past = time.time() - 60
    for name in (str(path), f"{path}-wal"):
        if os.path.exists(name):
            os.utime(name, (past, past))


async def test_a_live_file_counts_within_a_filter_once_per_committed_state(site_db, tmp_path):
    # Served live at a million papers, a click on a primary category counted its categories,
    # tags and elements per request and showed them as timed out (0.4-1.0 s); the immutable
    # site counts them once at startup. Live, they are counted once per committed state, in a
    # thread, and used only by requests that read that same state.
    from datasette.plugins import pm

    from harvest import store

    from .fake_arxiv import make_paper

    path = tmp_path / "ai4mat.db"
    shutil.copy(site_db, path)
    _settle(path)
    ds = live_datasette_for(path)
    plugin = pm.get_plugin("ai4mat_facets.py")  # the module Datasette loaded first, with its caches
    url = "/ai4mat/papers.json?primary_category=cond-mat.mtrl-sci"
    before = [("cond-mat.mtrl-sci", 3), ("cs.LG", 2), ("physics.comp-ph", 1)]
    assert counts((await facets_of(ds, url))[CATEGORIES]) == before  # counted with SQL, and the thread starts
    plugin._LIVE_COUNTING[os.path.realpath(path)].join(30)
    cached = {key: value for key, value in plugin._WITHIN.items() if key[0] and key[0][:2] == ("live", os.path.realpath(path))}
    assert sorted(key[1:] for key in cached) == [
        ("papers", "primary_category", "paper_categories", "category"),
        ("papers", "primary_category", "paper_elements", "element"),
        ("papers", "primary_category", "paper_links", "kind"),
        ("papers", "primary_category", "paper_tags", "tag"),
    ]
    category_key = next(key for key in cached if key[3] == "paper_categories")
    assert cached[category_key]["cond-mat.mtrl-sci"] == before
    # The next request of the same state reads the counts filed for it (changed here in memory to tell).
    plugin._WITHIN[category_key] = {"cond-mat.mtrl-sci": [("from the cache", 7)]}
    assert counts((await facets_of(ds, url))[CATEGORIES]) == [("from the cache", 7)]
    # A commit makes a new state: never answered from the old one's counts.
    with store.writing(path) as db:
        run_id = store.start_run(db, "q")
        with db.atomic():
            store.save_papers(db, run_id, [make_paper(777, categories=["cond-mat.mtrl-sci", "cs.LG"])])
            store.finish_run(db, run_id, store.RunCounts())
    after = [("cond-mat.mtrl-sci", 4), ("cs.LG", 3), ("physics.comp-ph", 1)]
    assert counts((await facets_of(ds, url))[CATEGORIES]) == after  # just written: SQL
    _settle(path)
    assert counts((await facets_of(ds, url))[CATEGORIES]) == after  # settled: SQL, and a new count starts
    plugin._LIVE_COUNTING[os.path.realpath(path)].join(30)
    cached = [key for key in plugin._WITHIN if key[0] and key[0][:2] == ("live", os.path.realpath(path))]
    assert len(cached) == 4 and category_key not in cached  # the old state's counts are dropped
    new_key = next(key for key in cached if key[3] == "paper_categories")
    assert plugin._WITHIN[new_key]["cond-mat.mtrl-sci"] == after


async def test_a_live_file_counts_its_tables_once_per_committed_state(site_db, tmp_path):
    # The database page counted every table per request when served live: 0.5-0.6 s at a
    # million papers (an immutable file counts once at startup).
    from datasette.plugins import pm

    from harvest import store

    from .fake_arxiv import make_paper

    path = tmp_path / "ai4mat.db"
    shutil.copy(site_db, path)
    _settle(path)
    ds = live_datasette_for(path)
    live = pm.get_plugin("ai4mat_live.py")
    response = await ds.client.get("/ai4mat.json")
    assert response.status_code == 200
    papers = {table["name"]: table["count"] for table in response.json()["tables"]}["papers"]
    key = next(key for key in live._TABLE_COUNTS if key[0] == os.path.realpath(path))
    assert live._TABLE_COUNTS[key]["papers"] == papers
    live._TABLE_COUNTS[key] = {**live._TABLE_COUNTS[key], "papers": 12345}  # changed in memory, to tell
    response = await ds.client.get("/ai4mat.json")
    assert {table["name"]: table["count"] for table in response.json()["tables"]}["papers"] == 12345
    with store.writing(path) as db:
        run_id = store.start_run(db, "q")
        with db.atomic():
            store.save_papers(db, run_id, [make_paper(777)])
            store.finish_run(db, run_id, store.RunCounts())
    for settled in (False, True):  # just written (not named: counted), then settled (a new state)
        if settled:
            _settle(path)
        response = await ds.client.get("/ai4mat.json")
        assert {table["name"]: table["count"] for table in response.json()["tables"]}["papers"] == papers + 1
    assert [key[1] for key in live._TABLE_COUNTS if key[0] == os.path.realpath(path)] != [key[1]]

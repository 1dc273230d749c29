"""Canned queries that list papers read as a list of papers; the papers table is scannable.

In process (Datasette with the site's metadata, plugins and templates): the exact papers of the
small harvested dataset, the feed link (only where the feed query exists), the freshness notice,
the table/JSON/CSV links, and the papers table page. In a real headless Chromium, served by
`ai4mat serve`: every list page at 1280 and 390 px wide over 1,448 real papers and over hostile
papers, with screenshots in test-artifacts/, no horizontal overflow, no request off the site, no
script from the data run, and the JSON and CSV byte-for-byte those of a server without the list
pages.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import sqlite3
import urllib.parse
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from datasette import hookimpl
from datasette.app import Datasette
from datasette.plugins import pm
from datasette.utils import tilde_encode

from harvest.cli import cli

from .browser import Chromium
from .fake_arxiv import FakeArxiv
from .hostile_data import AUTHORS_500, hostile_papers
from .site_data import METADATA_PATH, PLUGINS_DIR, ROOT, chromium_binary, load_metadata, serving
from .test_search_related import real_papers, store

ARTIFACTS = ROOT / "test-artifacts"
TEMPLATES_DIR = ROOT / "templates"
LIST_QUERIES = (
    "new_today", "new_this_week", "search", "by_author", "by_category", "by_tag", "by_elements", "with_code", "related",
)
# Query -> (feed query, the page's parameter, the feed's parameter): the feeds' naming convention.
FEEDS = {
    "search": ("feed_search", "q", "q"),
    "by_author": ("feed_author", "name", "name"),
    "by_category": ("feed_category", "category", "category"),
    "by_tag": ("feed_tag", "tags", "tag"),
}
WIDTHS = {"desktop": (1280, 900), "phone": (390, 844)}


def lists_plugin():
    spec = importlib.util.spec_from_file_location("ai4mat_lists_under_test", PLUGINS_DIR / "ai4mat_lists.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class PaperItems(HTMLParser):
    """The papers of a list page: for each <li class="paper">, its title link and its other links."""

    def __init__(self):
        super().__init__()
        self.papers: list[dict] = []
        self.feed_links: list[str] = []
        self.alternate_feeds: list[str] = []
        self._paper: dict | None = None
        self._in_title = self._in_title_link = False
        self._text: list[str] | None = None
        self._depth = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = (attrs.get("class") or "").split()
        if tag == "a" and "feed-link" in classes:
            self.feed_links.append(attrs["href"])
        if tag == "link" and attrs.get("rel") == "alternate" and attrs.get("type") == "application/atom+xml":
            self.alternate_feeds.append(attrs["href"])
        if tag == "li" and "paper" in classes:
            self._paper = {"title": None, "href": None, "links": {}, "authors": None, "status": None}
            self._depth = 0
            self.papers.append(self._paper)
        if self._paper is None:
            return
        if tag == "li":
            self._depth += 1
        if tag == "h2" and "paper-title" in classes:
            self._in_title = True
        elif tag == "a" and self._in_title:
            self._in_title_link, self._text = True, []
            self._paper["href"] = attrs["href"]
        elif tag == "a" and {"abs-link", "pdf-link", "code-link", "data-link"} & set(classes):
            kind = ({"abs-link", "pdf-link", "code-link", "data-link"} & set(classes)).pop()
            self._paper["links"].setdefault(kind, []).append(attrs["href"])
        elif tag == "span" and {"authors", "status"} & set(classes):
            self._field, self._text = ({"authors", "status"} & set(classes)).pop(), []

    def handle_endtag(self, tag):
        if self._paper is None:
            return
        if tag == "a" and self._in_title_link:
            self._paper["title"] = "".join(self._text)
            self._in_title_link, self._text = False, None
        elif tag == "h2":
            self._in_title = False
        elif tag == "span" and getattr(self, "_field", None) and self._text is not None and not self._in_title_link:
            if tag == "span" and self._field:
                self._paper[self._field] = " ".join("".join(self._text).split())
                self._field, self._text = None, None
        elif tag == "li":
            self._depth -= 1
            if self._depth == 0:
                self._paper = None

    def handle_data(self, data):
        if self._text is not None:
            self._text.append(data)


def paper_items(page: str) -> PaperItems:
    parser = PaperItems()
    parser.feed(page)
    return parser


def expected_items(rows: list[dict]) -> list[tuple[str, str]]:
    """(title, row page) of each row of a list query's JSON, in order."""
    return [
        (" ".join(row["title"].split()), "/ai4mat/papers/" + tilde_encode(row.get("arxiv_id") or row["related_id"]))
        for row in rows
    ]


def listed(parser: PaperItems) -> list[tuple[str, str]]:
    return [(paper["title"], paper["href"]) for paper in parser.papers]


# ---------------------------------------------------------------- in process, the small dataset


def datasette_for(path: Path, metadata: dict | None = None) -> Datasette:
    return Datasette(
        [], immutables=[str(path)], metadata=metadata or load_metadata(), plugins_dir=str(PLUGINS_DIR),
        template_dir=str(TEMPLATES_DIR),
    )


def with_feed_queries(metadata: dict) -> dict:
    """The metadata with stand-ins for the feed queries it lacks (the feeds are another change's)."""
    queries = metadata["databases"]["ai4mat"]["queries"]
    for feed_query, _, parameter in FEEDS.values():
        queries.setdefault(feed_query, {"sql": f"select :{parameter} as {parameter}"})
    return metadata


def without_feed_queries(metadata: dict) -> dict:
    queries = metadata["databases"]["ai4mat"]["queries"]
    for feed_query, _, _ in FEEDS.values():
        queries.pop(feed_query, None)
    return metadata


async def page_and_rows(ds: Datasette, path: str) -> tuple[str, list[dict]]:
    response = await ds.client.get(path)
    assert response.status_code == 200, response.text
    route, _, query = path.partition("?")
    rows = (await ds.client.get(route + ".json?" + query + ("&" if query else "") + "_shape=array")).json()
    return response.text, rows


@pytest.mark.asyncio
async def test_new_today_lists_its_papers_with_their_details(site_db):
    page, _ = await page_and_rows(datasette_for(site_db), "/ai4mat/new_today")
    papers = paper_items(page).papers
    assert [(p["title"], p["href"], p["status"], p["authors"]) for p in papers] == [
        ("Graph networks screen perovskite catalysts at scale", "/ai4mat/papers/2611~2E00002", "updated v2", "Bo Chen"),
        ('Crystal <b>diffusion</b> & "quoted" alloys', "/ai4mat/papers/2611~2E00004", "new", "Ann Lee"),
    ]
    assert papers[0]["links"] == {
        "abs-link": ["https://arxiv.org/abs/2611.00002v2"], "pdf-link": ["https://arxiv.org/pdf/2611.00002v2"],
    }
    # Escaped once, as text; no Datasette table on the list page.
    assert '<a href="/ai4mat/papers/2611~2E00004">Crystal &lt;b&gt;diffusion&lt;/b&gt; &amp; &#34;quoted&#34; alloys</a>' in page
    assert "Diffusion models meet &lt;script&gt;alert(1)&lt;/script&gt; battery materials." in page
    assert "<table" not in page


SITE_PAGES = {
    "/ai4mat/new_today": ["2611.00002", "2611.00004"],
    "/ai4mat/new_this_week": ["2611.00002", "2611.00004", "2611.00001", "2611.00002", "cond-mat/0102536"],
    "/ai4mat/by_author?name=Jane+Doe": ["2611.00001", "cond-mat/0102536"],
    "/ai4mat/by_category?category=cs.LG": ["2611.00002", "2611.00004", "2611.00001"],
    "/ai4mat/search?q=diffusion": None,  # the ranking is the search's; the list must follow it
    "/ai4mat/by_tag?tags=diffusion+model": None,
    "/ai4mat/related?arxiv_id=2611.00001": None,
    "/ai4mat/by_elements?elements=": [],
    "/ai4mat/with_code": [],
}


@pytest.mark.parametrize("path", SITE_PAGES)
@pytest.mark.asyncio
async def test_each_list_page_lists_exactly_its_rows(site_db, path):
    page, rows = await page_and_rows(datasette_for(site_db), path)
    parser = paper_items(page)
    assert listed(parser) == expected_items(rows)
    if SITE_PAGES[path] is not None:
        assert [row.get("arxiv_id") for row in rows] == SITE_PAGES[path]
    else:
        assert rows  # the dataset has papers for it
    if not rows:
        assert '<p class="zero-results">' in page


@pytest.mark.asyncio
async def test_feed_link_only_where_the_feed_query_exists(site_db):
    pages = {
        "search": "/ai4mat/search?q=diffusion+%26+%3Cscript%3E",
        "by_author": "/ai4mat/by_author?name=Jane+Doe",
        "by_category": "/ai4mat/by_category?category=cs.LG",
        "by_tag": "/ai4mat/by_tag?tags=diffusion+model",
    }
    with_feeds = datasette_for(site_db, with_feed_queries(load_metadata()))
    without = datasette_for(site_db, without_feed_queries(load_metadata()))
    expected = {
        "search": "/ai4mat/feed_search.atom?q=diffusion+%26+%3Cscript%3E",
        "by_author": "/ai4mat/feed_author.atom?name=Jane+Doe",
        "by_category": "/ai4mat/feed_category.atom?category=cs.LG",
        "by_tag": "/ai4mat/feed_tag.atom?tag=diffusion+model",
    }
    for query, path in pages.items():
        parser = paper_items((await with_feeds.client.get(path)).text)
        assert (parser.feed_links, parser.alternate_feeds) == ([expected[query]], [expected[query]]), query
        parser = paper_items((await without.client.get(path)).text)
        assert (parser.feed_links, parser.alternate_feeds) == ([], []), query
    # An empty parameter has no feed; pages without a feed convention have none.
    for path in ("/ai4mat/search?q=+", "/ai4mat/by_author", "/ai4mat/new_today", "/ai4mat/related?arxiv_id=2611.00001"):
        assert paper_items((await with_feeds.client.get(path)).text).feed_links == [], path


class Freshness:
    """A stand-in for the freshness plugin: what `ai4mat_freshness` holds, for every page."""

    def __init__(self, value):
        self.value = value

    @hookimpl(trylast=True)  # last, so it wins over a real freshness plugin in plugins/
    def extra_template_vars(self):
        return {"ai4mat_freshness": self.value}


@pytest.mark.asyncio
async def test_freshness_notice_on_new_today_and_new_this_week(site_db):
    ds = datasette_for(site_db)
    stale = {"message": "Last successful harvest 5 days ago <b>&</b>", "level": "warning", "stale": True}
    fresh = {"message": "Updated 3 hours ago", "level": "ok", "stale": False}
    for value, expected in (
        (stale, '<p class="freshness freshness-warning" role="status">Last successful harvest 5 days ago &lt;b&gt;&amp;&lt;/b&gt;</p>'),
        (fresh, '<p class="freshness freshness-ok" role="status">Updated 3 hours ago</p>'),
        (None, None),
    ):
        stand_in = Freshness(value)
        pm.register(stand_in, name="freshness-stand-in")
        try:
            for path in ("/ai4mat/new_today", "/ai4mat/new_this_week", "/ai4mat/new_today?_table=1", "/ai4mat/search?q=diffusion"):
                page = (await ds.client.get(path)).text
                notices = re.findall(r'<p class="freshness[^"]*"[^>]*>.*?</p>', page, re.S)
                assert notices == ([expected] if expected and "search" not in path else []), (path, value)
        finally:
            pm.unregister(name="freshness-stand-in")


@pytest.mark.asyncio
async def test_table_json_and_csv_one_click_away(site_db):
    ds = datasette_for(site_db)
    page = (await ds.client.get("/ai4mat/by_author?name=Jane+Doe")).text
    links = dict(re.findall(r'<a class="(table-link|export-link)" href="([^"]+)"', page))
    hrefs = re.findall(r'<a class="(?:table-link|export-link)" href="([^"]+)">([^<]+)</a>', page)
    assert [(text, href.replace("&amp;", "&")) for href, text in hrefs] == [
        ("Table", "/ai4mat/by_author?name=Jane+Doe&_table=1"),
        ("JSON", "/ai4mat/by_author.json?name=Jane+Doe"),
        ("BibTeX", "/ai4mat/by_author.bib?name=Jane+Doe"),
        ("RIS", "/ai4mat/by_author.ris?name=Jane+Doe"),
        ("CSV", "/ai4mat/by_author.csv?name=Jane+Doe&_size=max"),
    ]
    assert links
    table = (await ds.client.get("/ai4mat/by_author?name=Jane+Doe&_table=1")).text
    assert '<table class="rows-and-columns">' in table and '<li class="paper"' not in table
    assert '<a href="/ai4mat/by_author?name=Jane+Doe">Show as a list of papers</a>' in table
    assert '<td class="col-title">Generative transformers for inverse materials design</td>' in table
    # The JSON of the table view is the list page's JSON.
    one = (await ds.client.get("/ai4mat/by_author.json?name=Jane+Doe&_shape=array")).content
    two = (await ds.client.get("/ai4mat/by_author.json?name=Jane+Doe&_shape=array&_table=1")).content
    assert one == two and [row["arxiv_id"] for row in json.loads(one)] == ["2611.00001", "cond-mat/0102536"]


def test_authors_are_shortened_after_three():
    plugin = lists_plugin()
    names = ["A", "B", "C", "D", "E"]
    assert plugin.shortened_authors(names[:4], 4) == (["A", "B", "C", "D"], 0)
    assert plugin.shortened_authors(names[:4], 5) == (["A", "B", "C"], 2)
    assert plugin.shortened_authors(names[:1], 1) == (["A"], 0)
    assert plugin.abstract_start("word " * 100, 30) == "word word word word word word…"
    assert plugin.abstract_start("  short\n abstract ") == "short abstract"
    assert plugin.marked_snippet("…a **<b>** c…") == "…a <mark>&lt;b&gt;</mark> c…"
    assert plugin.link_label("https://www.github.com/org/repo/") == "github.com/org/repo"
    assert plugin.link_label("https://github.com/" + "x" * 60) == "github.com/" + "x" * 36 + "…"


# ---------------------------------------------------------------- the papers table page


@pytest.mark.asyncio
async def test_papers_table_folds_descriptions_and_shows_lists(site_db):
    ds = datasette_for(site_db)
    page = (await ds.client.get("/ai4mat/papers")).text
    details = re.search(r'<details class="column-descriptions-toggle">\s*<summary>([^<]*)</summary>\s*<dl class="column-descriptions">', page)
    columns = len(sqlite3.connect(site_db).execute("select * from papers limit 0").description)
    assert details and details.group(1) == f"What each column holds ({columns} columns)" and columns > 10
    facets = re.search(r'<details class="facets-toggle">\s*<summary>Facets: ([^<]*)</summary>', page)
    assert facets and sorted(facets.group(1).split(", ")) == [
        "paper_categories.category", "paper_elements.element", "paper_links.kind", "paper_tags.tag", "primary_category",
    ]
    assert re.search(r'<details class="facets-toggle" open>', (await ds.client.get("/ai4mat/papers?_facet=version")).text)
    assert re.search(r'<details class="facets-toggle" open>', (await ds.client.get("/ai4mat/papers?primary_category=cs.LG")).text)
    row = re.search(r'<td class="col-arxiv_id type-pk"><a href="/ai4mat/papers/cond-mat~2F0102536">.*?</tr>', page, re.S).group()
    assert (
        '<td class="col-authors type-str"><ul class="cell-list">'
        '<li><a href="/ai4mat/by_author?name=Jane+Doe">Jane Doe</a></li>'
        '<li><a href="/ai4mat/by_author?name=John+Roe">John Roe</a></li></ul></td>'
    ) in row
    assert (
        '<td class="col-categories type-str"><ul class="cell-list">'
        '<li><a href="/ai4mat/by_category?category=cond-mat.mtrl-sci">cond-mat.mtrl-sci</a></li>'
        '<li><a href="/ai4mat/by_category?category=physics.comp-ph">physics.comp-ph</a></li></ul></td>'
    ) in row
    # The row page too; the JSON keeps the arrays as JSON text.
    assert '<li><a href="/ai4mat/by_author?name=John+Roe">John Roe</a></li>' in (await ds.client.get("/ai4mat/papers/cond-mat~2F0102536")).text
    rows = (await ds.client.get("/ai4mat/papers.json?_shape=array&arxiv_id=cond-mat/0102536")).json()
    assert (rows[0]["authors"], rows[0]["categories"]) == ('["Jane Doe", "John Roe"]', '["cond-mat.mtrl-sci", "physics.comp-ph"]')


def test_long_lists_fold_after_ten_and_only_json_arrays_become_lists():
    plugin = lists_plugin()
    cell = plugin.list_cell(AUTHORS_500)
    assert cell.count("<li>") == 500
    assert cell.startswith('<ul class="cell-list"><li>Author 001</li>')
    assert '<li>Author 010</li></ul><details class="cell-list-more"><summary>490 more</summary><ul class="cell-list"><li>Author 011</li>' in cell
    assert "<li>&lt;script&gt;document.documentElement.setAttribute(&#x27;data-xss&#x27;,&#x27;author&#x27;)&lt;/script&gt;</li>" in cell
    for value in ('["a", 1]', "[not json", '{"a": 1}', "[]x", "plain"):
        assert plugin.json_list(value) is None, value
    assert plugin.json_list('["a", "b"]') == ["a", "b"]


# ---------------------------------------------------------------- served, in a real browser


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """{"real": 1,448 real papers with related papers, "hostile": hostile_data's papers harvested}."""
    root = tmp_path_factory.mktemp("list-browser")
    real = root / "real" / "ai4mat.db"
    real.parent.mkdir()
    store(real, real_papers())
    result = CliRunner().invoke(cli, ["relate", "--db", str(real)])
    assert result.exit_code == 0, result.output
    hostile = root / "hostile" / "ai4mat.db"
    hostile.parent.mkdir()
    config = root / "config.json"
    config.write_text(json.dumps({"query": "q", "delay_seconds": 0, "page_size": 5}))
    with FakeArxiv() as fake:
        fake.papers = hostile_papers()
        result = CliRunner().invoke(cli, ["harvest", "--db", str(hostile), "--config", str(config), "--api-url", fake.url])
    assert result.exit_code == 0, result.output
    return {"real": real, "hostile": hostile, "root": root}


def site_copy(root: Path, *, lists: bool) -> tuple[Path, Path]:
    """(metadata, plugins dir) to serve: the feed queries present (stand-ins where missing); without
    lists, the site as it was before the list pages (no ai4mat_lists plugin, no templates)."""
    folder = root / ("with-lists" if lists else "without-lists")
    if not folder.exists():
        folder.mkdir()
        (folder / "metadata.yml").write_text(yaml.safe_dump(with_feed_queries(load_metadata()), allow_unicode=True, sort_keys=False))
        shutil.copytree(PLUGINS_DIR, folder / "plugins", ignore=shutil.ignore_patterns("__pycache__", *(() if lists else ("ai4mat_lists.py",))))
        if lists:
            shutil.copytree(TEMPLATES_DIR, folder / "templates")
            (folder / "plugins" / "freshness_stand_in.py").write_text(FRESHNESS_STAND_IN)
    return folder / "metadata.yml", folder / "plugins"


# A stale harvest, on pages asked with ?_stale_stand_in=1 (last, over a real freshness plugin).
FRESHNESS_STAND_IN = """
from datasette import hookimpl

@hookimpl(trylast=True)
def extra_template_vars(request):
    if request is not None and request.args.get("_stale_stand_in"):
        return {"ai4mat_freshness": {"message": "The last successful harvest was 5 days ago.", "level": "warning", "stale": True}}
    return {}
"""


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200, url
        return response.read()


def real_pages(db_path: Path) -> dict[str, str]:
    """A page of each list query over the real papers, with arguments that give it papers."""
    conn = sqlite3.connect(db_path)
    try:
        (author,) = conn.execute(
            "select name from paper_authors group by name order by count(*) desc, name limit 1"
        ).fetchone()
        (tag,) = conn.execute("select tag from paper_tags group by tag order by count(*) desc, tag limit 1").fetchone()
        (newest,) = conn.execute("select arxiv_id from papers order by updated desc, arxiv_id desc limit 1").fetchone()
    finally:
        conn.close()
    return {
        "new_today": "/ai4mat/new_today",
        "new_this_week": "/ai4mat/new_this_week",
        "search": "/ai4mat/search?q=diffusion+model+crystal",
        "by_author": "/ai4mat/by_author?" + urllib.parse.urlencode({"name": author}),
        "by_category": "/ai4mat/by_category?category=cs.LG",
        "by_tag": "/ai4mat/by_tag?" + urllib.parse.urlencode({"tags": tag}),
        "by_elements": "/ai4mat/by_elements?elements=Li%2CO",
        "with_code": "/ai4mat/with_code",
        "related": "/ai4mat/related?arxiv_id=" + urllib.parse.quote(newest),
    }


LAYOUT = """JSON.stringify({
  scrollWidth: document.documentElement.scrollWidth,
  clientWidth: document.documentElement.clientWidth,
  firstPaperTop: (document.querySelector('li.paper h2, table.rows-and-columns tbody tr') || {getBoundingClientRect: () => ({top: null})}).getBoundingClientRect().top,
  xss: document.documentElement.getAttribute('data-xss'),
})"""


def check_page(browser: Chromium, base: str, path: str, width: int, height: int, shot: Path) -> tuple[PaperItems, dict]:
    """Load one page: nothing requested off the site, no horizontal overflow, a screenshot saved."""
    requested = browser.open(base + path, width, height)
    layout = json.loads(browser.evaluate(LAYOUT))
    assert [url for url in requested if not url.startswith(base)] == [], path
    assert layout["clientWidth"] == width
    assert layout["scrollWidth"] <= width, (path, width, layout)
    assert layout["xss"] is None, path
    shot.unlink(missing_ok=True)
    browser.screenshot(shot, max_height=2400 if width > 600 else 3000)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return paper_items(browser.dom()), layout


@pytest.mark.browser
def test_list_pages_in_chromium_at_desktop_and_phone_widths(datasets, tmp_path):
    binary = chromium_binary()
    pages = real_pages(datasets["real"])
    metadata, plugins = site_copy(datasets["root"], lists=True)
    base_metadata, base_plugins = site_copy(datasets["root"], lists=False)
    with serving(datasets["real"], "--immutable", "--metadata", str(metadata), "--plugins-dir", str(plugins)) as (_, base, _), \
            serving(datasets["real"], "--immutable", "--metadata", str(base_metadata), "--plugins-dir", str(base_plugins)) as (_, before, _), \
            Chromium(binary, tmp_path / "profile") as browser:
        # The measure works: a page wider than the phone is caught.
        wide = tmp_path / "wide.html"
        wide.write_text('<html><head><meta name="viewport" content="width=device-width"></head><body><div style="width:800px">x</div></body></html>')
        browser.open(wide.as_uri(), 390, 844)
        assert json.loads(browser.evaluate(LAYOUT))["scrollWidth"] > 390
        for query, path in pages.items():
            route, _, arguments = path.partition("?")
            rows = json.loads(fetch(base.rstrip("/") + route + ".json?" + arguments + "&_shape=array"))
            assert rows, query  # every page of this check has papers
            for width_name, (width, height) in WIDTHS.items():
                parser, layout = check_page(browser, base.rstrip("/"), path, width, height, ARTIFACTS / f"list-{query}-{width_name}.png")
                assert listed(parser) == expected_items(rows), (query, width_name)
                assert all(paper["links"]["abs-link"] and paper["links"]["pdf-link"] for paper in parser.papers)
                assert layout["firstPaperTop"] < height, (query, width_name)  # the first paper is on the first screen
                if query in FEEDS:
                    feed_query, page_parameter, feed_parameter = FEEDS[query]
                    value = urllib.parse.parse_qs(arguments)[page_parameter][0]
                    assert parser.feed_links == ["/ai4mat/" + feed_query + ".atom?" + urllib.parse.urlencode({feed_parameter: value})]
                else:
                    assert parser.feed_links == []
            # The data is the same with or without the list pages, byte for byte.
            for suffix in (".json?_shape=array&", ".csv?", ".json?"):
                ours, theirs = (fetch(server.rstrip("/") + route + suffix + arguments) for server in (base, before))
                if suffix == ".json?":
                    ours, theirs = (re.sub(rb'"query_ms": [0-9.e-]+', b"", body) for body in (ours, theirs))
                assert ours == theirs, (query, suffix)
        # A stale harvest is said at the top of new today, in a box.
        for width_name, (width, height) in WIDTHS.items():
            check_page(browser, base.rstrip("/"), "/ai4mat/new_today?_stale_stand_in=1", width, height, ARTIFACTS / f"list-new_today-stale-{width_name}.png")
            notice = json.loads(browser.evaluate(
                "JSON.stringify((() => { const n = document.querySelector('p.freshness-warning'); const r = n.getBoundingClientRect();"
                " return {text: n.textContent, top: r.top, width: r.width, border: getComputedStyle(n).borderTopWidth}; })())"
            ))
            assert notice["text"] == "The last successful harvest was 5 days ago."
            assert notice["top"] < 200 and notice["width"] > width / 2 and notice["border"] == "2px", notice
        # The papers table: lists as lists, the first paper on the first screen.
        for width_name, (width, height) in WIDTHS.items():
            _, layout = check_page(browser, base.rstrip("/"), "/ai4mat/papers", width, height, ARTIFACTS / f"papers-{width_name}.png")
            assert layout["firstPaperTop"] < height, (width_name, layout)
        assert fetch(base + "ai4mat/papers.json?_shape=array&_size=5") == fetch(before + "ai4mat/papers.json?_shape=array&_size=5")


@pytest.mark.browser
def test_hostile_papers_in_chromium(datasets, tmp_path):
    binary = chromium_binary()
    metadata, plugins = site_copy(datasets["root"], lists=True)
    script_author = AUTHORS_500[-1]
    pages = {
        "new_today": "/ai4mat/new_today",
        "search": "/ai4mat/search?q=show",
        "by_author": "/ai4mat/by_author?" + urllib.parse.urlencode({"name": script_author}),
        "related": "/ai4mat/related?arxiv_id=2611.00001",
        "papers": "/ai4mat/papers",
    }
    with serving(datasets["hostile"], "--immutable", "--metadata", str(metadata), "--plugins-dir", str(plugins)) as (_, base, _), \
            Chromium(binary, tmp_path / "profile") as browser:
        # The detector works: the same payload, unescaped, marks the document.
        control = tmp_path / "control.html"
        control.write_text("<html><body>" + hostile_papers()[0]["title"] + "</body></html>")
        browser.open(control.as_uri(), 390, 844)
        assert json.loads(browser.evaluate(LAYOUT))["xss"] == "script-title"
        for name, path in pages.items():
            for width_name, (width, height) in WIDTHS.items():
                parser, _ = check_page(browser, base.rstrip("/"), path, width, height, ARTIFACTS / f"hostile-{name}-{width_name}.png")
                dom = browser.dom()
                if name == "papers":
                    continue
                route, _, arguments = path.partition("?")
                rows = json.loads(fetch(base.rstrip("/") + route + ".json?" + arguments + ("&" if arguments else "") + "_shape=array"))
                assert rows and listed(parser) == expected_items(rows), (name, width_name)
                assert "&lt;script&gt;document.documentElement.setAttribute(" in dom, name
        # The 500-author paper: three names, then the count; the hostile author's page lists it.
        page = fetch(base + "ai4mat/new_today").decode()
        consortium = next(p for p in paper_items(page).papers if p["title"] == "A consortium paper")
        assert consortium["authors"] == "Author 001, Author 002, Author 003 et al. (500 authors)"


@pytest.mark.asyncio
async def test_an_authors_page_shows_that_author_among_many(tmp_path):
    path = tmp_path / "ai4mat.db"
    names = [f"Author {i}" for i in range(1, 10)]
    papers = [
        {**real_papers()[0], "arxiv_id": "2601.00001", "authors": names},
        {**real_papers()[1], "arxiv_id": "2601.00002", "authors": names[:5]},
        {**real_papers()[2], "arxiv_id": "2601.00003", "authors": names[3:]},
    ]
    store(path, papers)
    ds = datasette_for(path)
    expected = {
        "Author 5": {
            "2601.00001": "Author 1, Author 2, Author 3, … Author 5 et al. (9 authors)",
            "2601.00002": "Author 1, Author 2, Author 3, … Author 5 (5 authors)",
            "2601.00003": "Author 4, Author 5, Author 6 et al. (6 authors)",
        },
        "Author 4": {
            "2601.00001": "Author 1, Author 2, Author 3, Author 4 et al. (9 authors)",
            "2601.00002": "Author 1, Author 2, Author 3, Author 4 et al. (5 authors)",
            "2601.00003": "Author 4, Author 5, Author 6 et al. (6 authors)",
        },
    }
    for name, authors in expected.items():
        page = (await ds.client.get("/ai4mat/by_author?" + urllib.parse.urlencode({"name": name}))).text
        papers_listed = {p["href"].rsplit("/", 1)[1].replace("~2E", "."): p["authors"] for p in paper_items(page).papers}
        assert papers_listed == authors, name
        assert page.count(f'class="named-author">{name}</a>') == 3
    # Elsewhere nobody is singled out.
    page = (await ds.client.get("/ai4mat/new_today")).text
    assert "named-author\"" not in page.split("<body", 1)[1]

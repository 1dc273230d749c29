"""Lookups that forgive (issue 12): ids as people paste them, authors by any case or surname,
the table's search box with -word, and MSC/ACM class codes kept apart from arXiv categories."""

from __future__ import annotations

import http.client
import importlib.util
import json
import re
import sqlite3
import urllib.parse
from pathlib import Path

import pytest
import sqlite_utils

from harvest import store
from harvest.parse import author_key, author_matches, author_surname_key, normalise_id, parse_feed, split_categories
from harvest.store import writing

from .fake_arxiv import make_paper
from .site_data import OLD_STYLE, PLUGINS_DIR, load_metadata, serving
from .test_search_related import real_papers
from .test_search_related import store as store_papers
from .test_site import datasette_for, get_rows

FIXTURES = Path(__file__).resolve().parent / "fixtures"
OLD_FEED = FIXTURES / "atom_2017_cs-ml-cats_lastUpdated_start0_100entries.xml"


# ---------------------------------------------------------------- ids


@pytest.mark.parametrize(
    "written, arxiv_id",
    [
        ("2604.14082", "2604.14082"),
        ("2604.14082v4", "2604.14082"),
        (" arXiv:2604.14082v4 ", "2604.14082"),
        ("ARXIV: 2604.14082", "2604.14082"),
        ("https://arxiv.org/abs/2604.14082v4", "2604.14082"),
        ("http://arxiv.org/pdf/2604.14082v2.pdf", "2604.14082"),
        ("arxiv.org/pdf/2604.14082", "2604.14082"),
        ("https://arxiv.org/abs/2604.14082?context=cs", "2604.14082"),
        ("https://arxiv.org/html/2604.14082v1/", "2604.14082"),
        ("0704.0001", "0704.0001"),
        ("cond-mat/0102536v3", "cond-mat/0102536"),
        ("https://arxiv.org/abs/cond-mat/0102536v1", "cond-mat/0102536"),
        ("math.gt/0309136", "math.GT/0309136"),
        ("arXiv:math.GT/0309136v2", "math.GT/0309136"),
        ("solv-int/9901001v1", "solv-int/9901001"),
        # Not ids: returned as typed (stripped), so they find nothing.
        ("12604.14082", "12604.14082"),
        (" Jane Doe ", "Jane Doe"),
        ("", ""),
    ],
)
def test_an_id_as_pasted_becomes_the_bare_id(written, arxiv_id):
    assert normalise_id(written) == arxiv_id


def test_author_keys():
    assert author_key("Kedar  HIPPALGAONKAR") == author_key("Hippalgaonkar, Kedar") == "kedar hippalgaonkar"
    assert author_key("José Ángel García-López") == "jose angel garcia-lopez"
    assert author_key("K. Hippalgaonkar") == "k hippalgaonkar"
    assert author_surname_key("John Smith Jr.") == "smith"
    assert author_surname_key("Ma\u0308rta Mu\u0308ller") == "muller"  # combining umlauts
    assert [author_matches("Kedar Hippalgaonkar", query) for query in (
        "hippalgaonkar", "K. Hippalgaonkar", "kedar hippalgaonkar", "Hippalgaonkar, K.", "J. Hippalgaonkar",
        "Kedar", "Karl Hippalgaonkar",
    )] == [True, True, True, True, False, False, False]


# ---------------------------------------------------------------- categories and class codes


def test_class_codes_from_real_feed_bytes_are_kept_apart():
    feed = parse_feed(OLD_FEED.read_bytes())
    coded = [(p["arxiv_id"], p["categories"], p["classifications"]) for p in feed.papers if p["classifications"]]
    assert coded == [
        ("1709.09882", ["cs.RO", "cs.AI", "cs.CV", "cs.LG"],
         ["I.2.9; I.2.10; I.2.11; I.4.7; I.4.8; I.4.9; I.4.10; I.5.1; I.5.2; I.5.4; I.5.5"]),
        ("1709.00515", ["math.PR", "stat.ML"], ["34C29, 60J60, 62L20, 90C30"]),
        ("1709.09433", ["cs.AI"], ["68T30"]),
    ]
    categories = {category for paper in feed.papers for category in paper["categories"]}
    assert all(re.fullmatch(r"[a-z-]+(\.[A-Za-z-]+)?", category) for category in categories)


def test_split_categories_keeps_every_code_form():
    assert split_categories([
        "cs.LG", "math.DS", "physics.chem-ph", "cond-mat", "math-ph", "q-bio.NC",
        "82C32 (Primary) 37M05, 60H10, 68T07, 82-08 (Secondary)", "I.2.m; J.2", "65, 74", "00:General", "I.2",
    ]) == (
        ["cs.LG", "math.DS", "physics.chem-ph", "cond-mat", "math-ph", "q-bio.NC"],
        ["82C32 (Primary) 37M05, 60H10, 68T07, 82-08 (Secondary)", "I.2.m; J.2", "65, 74", "00:General", "I.2"],
    )


@pytest.mark.parametrize("save", [store.save_papers, store.save_papers_bulk])
def test_the_store_counts_only_arxiv_categories(tmp_path, save):
    papers = parse_feed(OLD_FEED.read_bytes()).papers
    # A record from elsewhere with the codes still among its categories is split the same way.
    papers.append(make_paper(1, categories=["cs.LG", "68T07", "I.2.6; J.2"]))
    with writing(tmp_path / "ai4mat.db") as db:
        run_id = store.start_run(db, "q")
        with db.atomic():
            save(db, run_id, papers)
        counted = dict(db.execute("select category, papers from category_counts").fetchall())
        assert counted == dict(db.execute(
            "select category, count(*) from paper_categories group by category").fetchall())
        assert not [c for c in counted if not re.fullmatch(r"[a-z-]+(\.[A-Za-z-]+)?", c)]
        assert counted["cs.LG"] == 32 + 1
        assert db.execute(
            "select categories, classifications from papers where arxiv_id in ('1709.09433', '2611.00001') order by arxiv_id"
        ).fetchall() == [('["cs.AI"]', '["68T30"]'), ('["cs.LG"]', '["68T07", "I.2.6; J.2"]')]
        assert db.execute("select categories, classifications from versions where arxiv_id = '1709.09433'").fetchall() == [
            ('["cs.AI"]', '["68T30"]'),
        ]
        assert db.execute(
            "select name, name_key, surname_key from paper_authors where arxiv_id = '1709.09433'"
        ).fetchall() == [
            ("Luca Buoncompagni", "luca buoncompagni", "buoncompagni"),
            ("Fulvio Mastrogiovanni", "fulvio mastrogiovanni", "mastrogiovanni"),
            ("Alessandro Saffiotti", "alessandro saffiotti", "saffiotti"),
        ]


def make_v5_file(path: Path, monkeypatch) -> None:
    """A schema-5 file holding papers stored as schema 5 did: codes among the categories."""
    with monkeypatch.context() as patch:
        patch.setattr(store, "MIGRATIONS", store.MIGRATIONS[:5])
        patch.setattr(store, "SCHEMA_VERSION", 5)
        with writing(path):
            pass
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("insert into runs (id, started_at, query, status) values (1, '2026-11-01T00:00:00Z', 'q', 'ok')")
        for arxiv_id, categories, authors in (
            ("2511.00070", ["cs.LG", "cs.AI", "90C29 (Primary), 68T07, 65K05 (Secondary)", "G.1.6; I.2.6; J.6"], ["Ana Núñez", "Bo Chen"]),
            ("2508.00001", ["cs.LG", "cond-mat.mtrl-sci"], ["Kedar Hippalgaonkar"]),
        ):
            conn.execute(
                "insert into papers (arxiv_id, version, title, summary, authors, primary_category, categories, updated, first_run, last_run) "
                "values (?, 1, 't', 's', ?, 'cs.LG', ?, '2026-11-01T00:00:00Z', 1, 1)",
                [arxiv_id, json.dumps(authors), json.dumps(categories)],
            )
            conn.executemany("insert into paper_categories values (?, ?, ?, '2026-11-01T00:00:00Z')",
                             [(arxiv_id, i, c) for i, c in enumerate(categories)])
            conn.executemany("insert into paper_authors values (?, ?, ?)", [(arxiv_id, i, a) for i, a in enumerate(authors)])
    conn.close()


def test_schema_8_moves_class_codes_out_and_keys_every_author(tmp_path, monkeypatch):
    path = tmp_path / "ai4mat.db"
    make_v5_file(path, monkeypatch)
    before = sqlite3.connect(path).execute("select category, papers from category_counts order by category").fetchall()
    assert ("68T07", 1) not in before and ("G.1.6; I.2.6; J.6", 1) in before  # schema 5 counted codes
    with writing(path) as db:
        assert db.execute("pragma user_version").fetchone() == (store.SCHEMA_VERSION,)
        expected = (
            [("2508.00001", '["cs.LG", "cond-mat.mtrl-sci"]', "[]"),
             ("2511.00070", '["cs.LG", "cs.AI"]', '["90C29 (Primary), 68T07, 65K05 (Secondary)", "G.1.6; I.2.6; J.6"]')],
            [("cond-mat.mtrl-sci", 1), ("cs.AI", 1), ("cs.LG", 2)],
            [("2508.00001", 0, "cs.LG"), ("2508.00001", 1, "cond-mat.mtrl-sci"), ("2511.00070", 0, "cs.LG"), ("2511.00070", 1, "cs.AI")],
            [("Kedar Hippalgaonkar", "kedar hippalgaonkar", "hippalgaonkar"), ("Ana Núñez", "ana nunez", "nunez"), ("Bo Chen", "bo chen", "chen")],
        )

        def state():
            return (
                db.execute("select arxiv_id, categories, classifications from papers order by arxiv_id").fetchall(),
                db.execute("select category, papers from category_counts order by category").fetchall(),
                db.execute("select arxiv_id, position, category from paper_categories order by arxiv_id, position").fetchall(),
                db.execute("select name, name_key, surname_key from paper_authors order by arxiv_id, position").fetchall(),
            )

        assert state() == expected
        schema = db.schema
        with db.atomic():
            store._schema_v8_lookups(db)  # idempotent
        assert (state(), db.schema) == (expected, schema)
        # The store keeps the keys on later writes, and a refreshed paper stays refreshed only once.
        run_id = store.start_run(db, "q")
        paper = {**make_paper(0, arxiv_id="2511.00070", categories=["cs.LG", "cs.AI"], authors=["Ana Núñez", "Bo Chen"],
                              classifications=["90C29 (Primary), 68T07, 65K05 (Secondary)", "G.1.6; I.2.6; J.6"]),
                 "title": "t", "summary": "s", "updated": "2026-11-01T00:00:00Z", "published": None}
        with db.atomic():
            counts = store.save_papers(db, run_id, [paper])
        assert (counts.new, counts.updated) == (0, 0)
        assert state()[1:] == expected[1:]


def lookup_connection(path) -> sqlite3.Connection:
    """A connection with the site's lookup functions, as Datasette's are."""
    spec = importlib.util.spec_from_file_location("ai4mat_lookups_under_test", PLUGINS_DIR / "ai4mat_lookups.py")
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    conn = sqlite3.connect(path)
    plugin.prepare_connection(conn)
    return conn


def query_plan(conn, sql: str, params: dict) -> str:
    return "\n".join(row[3] for row in conn.execute("explain query plan " + sql, params))


def test_lookups_read_indexes_not_every_row(tmp_path):
    path = tmp_path / "ai4mat.db"
    with writing(path):
        pass
    queries = load_metadata()["databases"]["ai4mat"]["queries"]
    conn = lookup_connection(path)
    author_plan = query_plan(conn, queries["by_author"]["sql"], {"name": "K. Hippalgaonkar"})
    assert "SEARCH paper_authors USING COVERING INDEX paper_authors_surname_key (surname_key=?)" in author_plan
    assert "SCAN paper_authors" not in author_plan and "SCAN p" not in author_plan
    history_plan = query_plan(conn, queries["paper_history"]["sql"], {"arxiv_id": "2604.14082v4"})
    assert "SEARCH v USING INDEX sqlite_autoindex_versions_1 (arxiv_id=?)" in history_plan
    related_plan = query_plan(conn, queries["related"]["sql"], {"arxiv_id": "2604.14082v4"})
    assert "SEARCH r USING INDEX sqlite_autoindex_related_1 (arxiv_id=?)" in related_plan


# ---------------------------------------------------------------- the site


@pytest.mark.asyncio
@pytest.mark.parametrize("query", ["paper_history", "related"])
@pytest.mark.parametrize("arxiv_id, forms", [
    ("2611.00002", ["2611.00002v2", "2611.00002v1", " arXiv:2611.00002 ", "https://arxiv.org/abs/2611.00002v2",
                    "http://arxiv.org/pdf/2611.00002v1.pdf"]),
    ("cond-mat/0102536", ["cond-mat/0102536v1", "https://arxiv.org/abs/cond-mat/0102536v1", "arXiv:cond-mat/0102536"]),
])
async def test_id_parameters_take_any_written_form(site_db, query, arxiv_id, forms):
    ds = datasette_for(site_db)
    path = f"/ai4mat/{query}.json?"
    expected = await get_rows(ds, path + urllib.parse.urlencode({"arxiv_id": arxiv_id}))
    assert len(expected) == ({"paper_history": 2, "related": 3}[query] if arxiv_id == "2611.00002"
                             else {"paper_history": 1, "related": 3}[query])
    for form in forms:
        assert await get_rows(ds, path + urllib.parse.urlencode({"arxiv_id": form})) == expected, form
    assert await get_rows(ds, path + urllib.parse.urlencode({"arxiv_id": "2611.00099v1"})) == []


AUTHORS_DB_PAPERS = [
    # (n, authors, updated): newest update first within each fit
    (1, ["Kedar Hippalgaonkar", "Ann Lee"], "2026-11-01T00:00:00Z"),
    (2, ["KEDAR HIPPALGAONKAR"], "2026-11-05T00:00:00Z"),
    (3, ["K. Hippalgaonkar"], "2026-11-04T00:00:00Z"),
    (4, ["Jörg Hippalgaonkar"], "2026-11-06T00:00:00Z"),
    (5, ["Kedar Hippalgaonkar"], "2026-11-03T00:00:00Z"),
    (6, ["Kedar Hippalgaonkar-Smith", "Jose Núñez"], "2026-11-07T00:00:00Z"),
    (7, ["José Núñez"], "2026-11-02T00:00:00Z"),
]


@pytest.fixture(scope="module")
def authors_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("authors") / "ai4mat.db"
    store_papers(path, [make_paper(n, authors=authors, updated=updated) for n, authors, updated in AUTHORS_DB_PAPERS])
    return path


@pytest.mark.asyncio
@pytest.mark.parametrize("name, found", [
    # Exact name first, then the same name in other case, then initials; newest first within each.
    ("Kedar Hippalgaonkar", [("2611.00005", "Kedar Hippalgaonkar"), ("2611.00001", "Kedar Hippalgaonkar"),
                             ("2611.00002", "KEDAR HIPPALGAONKAR"), ("2611.00003", "K. Hippalgaonkar")]),
    ("kedar hippalgaonkar", [("2611.00002", "KEDAR HIPPALGAONKAR"), ("2611.00005", "Kedar Hippalgaonkar"),
                             ("2611.00001", "Kedar Hippalgaonkar"), ("2611.00003", "K. Hippalgaonkar")]),
    ("K. Hippalgaonkar", [("2611.00003", "K. Hippalgaonkar"), ("2611.00002", "KEDAR HIPPALGAONKAR"),
                          ("2611.00005", "Kedar Hippalgaonkar"), ("2611.00001", "Kedar Hippalgaonkar")]),
    ("Hippalgaonkar", [("2611.00004", "Jörg Hippalgaonkar"), ("2611.00002", "KEDAR HIPPALGAONKAR"),
                       ("2611.00003", "K. Hippalgaonkar"), ("2611.00005", "Kedar Hippalgaonkar"),
                       ("2611.00001", "Kedar Hippalgaonkar")]),
    ("Hippalgaonkar, Kedar", [("2611.00002", "KEDAR HIPPALGAONKAR"), ("2611.00005", "Kedar Hippalgaonkar"),
                              ("2611.00001", "Kedar Hippalgaonkar"), ("2611.00003", "K. Hippalgaonkar")]),
    ("jose nunez", [("2611.00006", "Jose Núñez"), ("2611.00007", "José Núñez")]),
    ("José Núñez", [("2611.00007", "José Núñez"), ("2611.00006", "Jose Núñez")]),
    ("Kedar", []),
    ("", []),
])
async def test_by_author_forgives_case_accents_and_given_names(authors_db, name, found):
    rows = await get_rows(datasette_for(authors_db), "/ai4mat/by_author.json?" + urllib.parse.urlencode({"name": name}))
    assert [(row["arxiv_id"], row["author"]) for row in rows] == found


# ---------------------------------------------------------------- over HTTP, from `ai4mat serve`


def raw_get(base: str, path: str) -> tuple[int, str | None, bytes]:
    """GET `path` as written (no redirect followed): status, Location, body."""
    parts = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.getheader("location"), response.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The 1,448 real papers and one old-style id, served by a real `ai4mat serve`."""
    path = tmp_path_factory.mktemp("served") / "ai4mat.db"
    store_papers(path, real_papers() + [OLD_STYLE])
    with serving(path) as (_, base, _):
        yield base


@pytest.mark.parametrize("path, location", [
    ("/ai4mat/papers/2507.00459", "/ai4mat/papers/2507~2E00459"),
    ("/ai4mat/papers/2507.00459v2", "/ai4mat/papers/2507~2E00459"),
    ("/ai4mat/papers/arXiv:2507.00459v1", "/ai4mat/papers/2507~2E00459"),
    ("/ai4mat/papers/https://arxiv.org/abs/2507.00459v1", "/ai4mat/papers/2507~2E00459"),
    ("/ai4mat/papers/arxiv.org/pdf/2507.00459v3.pdf", "/ai4mat/papers/2507~2E00459"),
    ("/ai4mat/papers/2507.00459.json?_shape=array", "/ai4mat/papers/2507~2E00459.json?_shape=array"),
    ("/ai4mat/papers/cond-mat/0102536", "/ai4mat/papers/cond-mat~2F0102536"),
    ("/ai4mat/papers/cond-mat/0102536v1.json", "/ai4mat/papers/cond-mat~2F0102536.json"),
    ("/ai4mat/papers/cond-mat%2F0102536", "/ai4mat/papers/cond-mat~2F0102536"),
])
def test_a_paper_page_at_its_plain_id_redirects_to_the_row(served, path, location):
    status, found, _ = raw_get(served, path)
    assert (status, found) == (302, location)
    status, _, body = raw_get(served, location)
    assert status == 200
    if location.endswith(".json?_shape=array"):
        assert [row["arxiv_id"] for row in json.loads(body)] == ["2507.00459"]


@pytest.mark.parametrize("path, status", [
    ("/ai4mat/papers/2507~2E00459", 200),  # the row URL itself: served, not redirected
    ("/ai4mat/papers/2507.99999", 404),
    ("/ai4mat/papers/2507.99999v2", 404),
    ("/ai4mat/papers/cond-mat/9999999", 404),
    ("/ai4mat/papers/not-an-id", 404),
])
def test_unknown_ids_keep_their_404(served, path, status):
    assert raw_get(served, path)[:2] == (status, None)


def fixture_texts() -> dict[str, str]:
    return {paper["arxiv_id"]: (paper["title"] + " " + paper["summary"]).lower() for paper in real_papers() + [OLD_STYLE]}


def table_search(base: str, text: str, **extra) -> tuple[int, dict]:
    query = urllib.parse.urlencode({"_search": text, "_size": "max", "_col": "title", "_shape": "objects", **extra})
    status, _, body = raw_get(base, "/ai4mat/papers.json?" + query)
    return status, json.loads(body)


@pytest.mark.parametrize("text", ["diffusion -polymer", "diffusion NOT polymer"])
def test_the_table_search_leaves_out_negated_words(served, text):
    status, result = table_search(served, text)
    texts = fixture_texts()
    ids = [row["arxiv_id"] for row in result["rows"]]
    assert (status, result["filtered_table_rows_count"], len(ids)) == (200, 180, 180)
    assert not [i for i in ids if re.search(r"\bpolymers?\b", texts[i])]
    # 184 papers say diffus-; the 4 that say polymer too are the ones left out.
    assert table_search(served, "diffusion polymer")[1]["filtered_table_rows_count"] == 4


def test_the_canned_search_leaves_out_not_words(served):
    status, _, body = raw_get(served, "/ai4mat/search.json?" + urllib.parse.urlencode({"q": "diffusion NOT polymer", "_shape": "array"}))
    texts = fixture_texts()
    rows = json.loads(body)
    assert (status, len(rows)) == (200, 50)
    assert not [row["arxiv_id"] for row in rows if re.search(r"\bpolymers?\b", texts[row["arxiv_id"]])]


def test_the_table_search_takes_a_prefix_as_the_canned_search_does(served):
    status, result = table_search(served, "diffus*")
    texts = fixture_texts()
    expected = {arxiv_id for arxiv_id, text in texts.items() if re.search(r"\bdiffus", text)}
    assert (status, result["filtered_table_rows_count"], len(expected)) == (200, 184, 184)
    assert {row["arxiv_id"] for row in result["rows"]} == expected
    _, _, body = raw_get(served, "/ai4mat/search.json?" + urllib.parse.urlencode({"q": "diffus*", "_shape": "array"}))
    canned = {row["arxiv_id"] for row in json.loads(body)}
    assert len(canned) == 50 and canned <= expected


@pytest.mark.parametrize("text, count", [('"', 0), ('""', 0), ('"diffusion', 184), ('diffusion"', 184), ("(", 0), ("-", 0)])
def test_a_stray_quote_searches_the_words_not_fts5_syntax(served, text, count):
    status, result = table_search(served, text)
    assert (status, result["filtered_table_rows_count"]) == (200, count)
    # The HTML page's box goes to the canned search, which answers too.
    status, location, _ = raw_get(served, "/ai4mat/papers?" + urllib.parse.urlencode({"_search": text}))
    assert (status, location) == (302, "/ai4mat/search?" + urllib.parse.urlencode({"q": text}))
    assert raw_get(served, location)[0] == 200


def test_the_plugin_works_where_ai4mat_is_not_installed(tmp_path):
    """As in the published image: the plugin and harvest/lookups.py beside it, no harvest package."""
    import shutil
    import subprocess
    import sys

    shutil.copy(PLUGINS_DIR / "ai4mat_lookups.py", tmp_path / "ai4mat_lookups.py")
    shutil.copy(PLUGINS_DIR.parent / "harvest" / "lookups.py", tmp_path / "ai4mat_lookup_rules.py")
    script = f"""
import importlib.util, sqlite3, sys
sys.modules["harvest"] = None  # import harvest fails, as where it is not installed
spec = importlib.util.spec_from_file_location("plugin", {str(tmp_path / "ai4mat_lookups.py")!r})
plugin = importlib.util.module_from_spec(spec)
spec.loader.exec_module(plugin)
conn = sqlite3.connect(":memory:")
plugin.prepare_connection(conn)
print(conn.execute("select arxiv_id('https://arxiv.org/abs/2604.14082v4'), author_surname_key('K. Hippalgaonkar')").fetchone())
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, "('2604.14082', 'hippalgaonkar')\n", "")


def test_fts5_syntax_in_raw_mode_says_what_was_wrong(served):
    status, result = table_search(served, '"', _searchmode="raw")
    assert (status, result["error"]) == (
        400, '_search=": not a valid FTS5 query (unterminated string); without _searchmode=raw the words are searched as typed',
    )
    assert table_search(served, "diffus*", _searchmode="raw")[1]["filtered_table_rows_count"] == 184

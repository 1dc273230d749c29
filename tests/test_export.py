"""BibTeX and RIS exports (plugins/ai4mat_export.py) and the `health` query, through a real
`ai4mat serve` and Datasette in process, parsed back with bibtexparser and rispy."""

from __future__ import annotations

import datetime
import importlib.util
import json
import sqlite3
import urllib.error
import urllib.request

import bibtexparser
import pytest
import rispy
from bibtexparser import middlewares

from harvest.fetch import ArxivClient
from harvest.runner import run_harvest
from harvest.store import open_db, writing

from .fake_arxiv import FIXTURES, FakeArxiv, make_paper
from .site_data import PLUGINS_DIR, QUERY, serving
from .test_site import datasette_for, get_rows

REAL = {p["arxiv_id"]: p for p in json.loads((FIXTURES / "ai4mat" / "papers.json").read_text(encoding="utf-8"))["papers"]}
# Real titles: $...$ math, an accented author and a DOI with "_", TeX braces, "&", math braces.
REAL_IDS = ["2201.07569", "1907.01632", "2507.14763", "2407.07736", "2508.08657", "2508.04506"]
HOSTILE = make_paper(
    7, title="Hostile } title { with 100% #1 a_b ~ ^ <script>alert(1)</script>\n@misc{evil, x={y}} two\n  lines \\",
    summary="First line.\nER  - \nTY  - JOUR\nTI  - Injected\nSecond line.",
    authors=["Smith and Wesson Consortium", "Zoë Ångström"], published="2026-11-02T10:00:00Z",
    updated="2026-11-02T10:00:00Z", comment="3 pages\nER  - ", journal_ref=None, doi=None,
)
# Same first author, year and first title word as TWIN_B: the keys must still differ.
TWIN_A = make_paper(8, title="Generative models of alloys", authors=["Jane Doe"], published="2026-11-03T10:00:00Z")
TWIN_B = make_paper(9, title="Generative models of glasses", authors=["Jane Doe"], published="2026-11-04T10:00:00Z")


@pytest.fixture(scope="module")
def export_db(tmp_path_factory):
    """The real papers above plus hostile and twin ones, stored by the real harvester."""
    path = tmp_path_factory.mktemp("export") / "ai4mat.db"
    papers = [REAL[i] for i in REAL_IDS] + [HOSTILE, TWIN_A, TWIN_B]
    with FakeArxiv() as fake:
        fake.papers = papers
        client = ArxivClient(fake.url, delay_seconds=0, max_retries=0, timeout=(2.0, 2.0), sleep=lambda s: None)
        with writing(path) as db:
            run_harvest(db, client, QUERY)
    return path


def parse_bibtex(text: str) -> dict[str, dict[str, str]]:
    """Entries by eprint, each as {field: raw value}, with the key as "ID"; fails on any unparsed block."""
    library = bibtexparser.parse_string(text)
    assert library.failed_blocks == [] and library.comments == [], text
    return {e["eprint"]: {"ID": e.key, "ENTRYTYPE": e.entry_type, **{f.key: f.value for f in e.fields}}
            for e in library.entries}


def fetch(url: str) -> tuple[int, dict, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


# ---------------------------------------------------------------- over HTTP, a real `ai4mat serve`


def test_bib_and_ris_of_a_table_a_canned_query_and_a_filtered_page_over_http(export_db):
    with serving(export_db) as (_, base, _):
        status, headers, body = fetch(base + "ai4mat/papers.bib?_size=max")
        assert status == 200
        assert headers["content-type"] == "application/x-bibtex; charset=utf-8"
        assert headers["content-disposition"] == 'attachment; filename="papers.bib"'
        entries = parse_bibtex(body.decode("utf-8"))
        assert sorted(entries) == sorted(REAL_IDS + ["2611.00007", "2611.00008", "2611.00009"])
        assert entries["2201.07569"] == {
            "ID": "mellaerts2022origin", "ENTRYTYPE": "misc",
            "title": "On the origin of supertetragonality in BaTiO$_3$",
            "author": "Simon Mellaerts and Jin Won Seo and Valeri Afanas'ev and Michel Houssa and Jean-Pierre Locquet",
            "year": "2022", "eprint": "2201.07569", "archivePrefix": "arXiv", "primaryClass": "cond-mat.mtrl-sci",
            "doi": "10.1103/PhysRevMaterials.6.064410", "note": "Physical Review MATERIALS 6, 064410 (2022)",
            "url": "https://arxiv.org/abs/2201.07569",
        }

        # A canned query that shows few columns still exports full records.
        status, headers, body = fetch(base + "ai4mat/search.ris?q=graphene")
        assert status == 200
        assert headers["content-type"] == "application/x-research-info-systems; charset=utf-8"
        assert headers["content-disposition"] == 'attachment; filename="search.ris"'
        assert body.decode("utf-8").endswith("ER  - \r\n")
        assert rispy.loads(body.decode("utf-8")) == [{
            "type_of_reference": "GEN", "id": "2508.04506",
            "authors": ["José A. S. Laranjeira", "Kleuton A. L. Lima", "Nicolas F. Martins", "Luiz A. Ribeiro Junior",
                        "Douglas S. Galvão", "Luis A. Cabral", "Julio R. Sambrano"],
            "title": "$β$-Irida-Graphene: A New 2D Carbon Allotrope for Sodium-Ion Battery Anodes",
            "year": "2025", "date": "2025/08/06", "urls": ["https://arxiv.org/abs/2508.04506"],
            "name_of_database": "arXiv", "accession_number": "arXiv:2508.04506v1",
            "abstract": " ".join(REAL["2508.04506"]["summary"].split()),
        }]

        # A filtered table page exports only its rows.
        status, _, body = fetch(base + "ai4mat/papers.bib?primary_category=cs.LG")
        assert status == 200
        assert {k: v["ID"] for k, v in parse_bibtex(body.decode("utf-8")).items()} == {
            "1907.01632": "schwalbekoda2019generative", "2508.08657": "ju2025llm",
        }

        status, headers, body = fetch(base + "ai4mat/runs.ris")
        assert (status, headers["content-type"]) == (400, "text/plain; charset=utf-8")
        assert body.decode() == (
            "This page has no arxiv_id column, so it lists no papers to export as RIS. Export a page that "
            "lists papers instead, such as /ai4mat/papers.ris or /ai4mat/new_today.ris.\n"
        )


# ---------------------------------------------------------------- BibTeX content, in process


@pytest.mark.asyncio
async def test_bibtex_round_trips_accents_math_braces_and_ampersands(export_db):
    response = await datasette_for(export_db).client.get("/ai4mat/papers.bib?_size=max")
    assert response.status_code == 200
    entries = parse_bibtex(response.text)
    # Math and TeX commands stay as arXiv has them; accents stay UTF-8; "&" is escaped.
    assert {i: entries[i]["title"] for i in REAL_IDS} == {
        "2201.07569": "On the origin of supertetragonality in BaTiO$_3$",
        "1907.01632": "Generative Models for Automatic Chemical Design",
        "2507.14763": "Enhanced phonon-drag by nanoscale design of homoepitaxial \\hbox{$β$-Ga$_2$O$_3$}",
        "2407.07736": "Prediction of Frequency-Dependent Optical Spectrum for Solid Materials: "
                      "A Multi-Output \\& Multi-Fidelity Machine Learning Approach",
        "2508.08657": "$\\text{M}^{2}$LLM: Multi-view Molecular Representation Learning with Large Language Models",
        "2508.04506": "$β$-Irida-Graphene: A New 2D Carbon Allotrope for Sodium-Ion Battery Anodes",
    }
    # A LaTeX-to-Unicode reader gives back arXiv's text: the escaped "&" and the accents.
    decoded = bibtexparser.parse_string(
        response.text, append_middleware=[middlewares.SeparateCoAuthors(), middlewares.LatexDecodingMiddleware()]
    )
    by_eprint = {e["eprint"]: e for e in decoded.entries}
    assert by_eprint["2407.07736"]["title"] == REAL["2407.07736"]["title"]
    assert by_eprint["1907.01632"]["author"] == ["Daniel Schwalbe-Koda", "Rafael Gómez-Bombarelli"]
    assert by_eprint["2508.04506"]["author"] == REAL["2508.04506"]["authors"]
    assert entries["1907.01632"] == {
        "ID": "schwalbekoda2019generative", "ENTRYTYPE": "misc",
        "title": "Generative Models for Automatic Chemical Design",
        "author": "Daniel Schwalbe-Koda and Rafael Gómez-Bombarelli", "year": "2019", "eprint": "1907.01632",
        "archivePrefix": "arXiv", "primaryClass": "cs.LG",
        "doi": "10.1007/978-3-030-40245-7_21",  # a verbatim field: "_" stays as it is
        "url": "https://arxiv.org/abs/1907.01632",
    }
    # Keys: first author's surname (ASCII-folded), version 1's year, first significant word.
    assert {i: entries[i]["ID"] for i in REAL_IDS} == {
        "2201.07569": "mellaerts2022origin", "1907.01632": "schwalbekoda2019generative",
        "2507.14763": "boy2025enhanced", "2407.07736": "ibrahim2024prediction",
        "2508.08657": "ju2025llm", "2508.04506": "laranjeira2025irida",
    }


@pytest.mark.asyncio
async def test_hostile_text_stays_inside_its_bibtex_field(export_db):
    response = await datasette_for(export_db).client.get("/ai4mat/papers.bib?_size=max")
    entries = parse_bibtex(response.text)
    assert len(entries) == 9  # "@misc{evil," in a title starts no entry
    assert entries["2611.00007"] == {
        "ID": "consortium2026hostile", "ENTRYTYPE": "misc",
        # Unmatched braces become commands (BibTeX counts every brace); matched ones stay TeX groups.
        "title": "Hostile \\textbraceright{} title \\textbraceleft{} with 100\\% \\#1 a\\_b \\textasciitilde{} "
                 "\\textasciicircum{} <script>alert(1)</script> @misc{evil, x={y}} two lines \\textbackslash{}",
        # A name containing "and" is braced, so it stays one author.
        "author": "{Smith and Wesson Consortium} and Zoë Ångström",
        "year": "2026", "eprint": "2611.00007", "archivePrefix": "arXiv", "primaryClass": "cond-mat.mtrl-sci",
        "url": "https://arxiv.org/abs/2611.00007",
    }
    decoded = bibtexparser.parse_string(response.text, append_middleware=[middlewares.SeparateCoAuthors()])
    hostile = next(e for e in decoded.entries if e["eprint"] == "2611.00007")
    assert hostile["author"] == ["{Smith and Wesson Consortium}", "Zoë Ångström"]


@pytest.mark.asyncio
async def test_citation_keys_are_unique_and_do_not_depend_on_page_order(export_db):
    ds = datasette_for(export_db)
    keys = {}
    for order in ("_sort=arxiv_id", "_sort_desc=arxiv_id"):
        response = await ds.client.get(f"/ai4mat/papers.bib?_size=max&{order}")
        entries = parse_bibtex(response.text)
        keys[order] = {eprint: entry["ID"] for eprint, entry in entries.items()}
        listed = [line for line in response.text.splitlines() if line.startswith("@misc{")]
        assert len(listed) == len(set(listed)) == 9
    assert keys["_sort=arxiv_id"] == keys["_sort_desc=arxiv_id"]
    # The lowest arxiv_id keeps the bare key.
    assert (keys["_sort=arxiv_id"]["2611.00008"], keys["_sort=arxiv_id"]["2611.00009"]) == (
        "doe2026generative", "doe2026generativea",
    )
    # Alone on a page, a twin gets the bare key.
    response = await ds.client.get("/ai4mat/papers.bib?arxiv_id=2611.00009")
    assert [e["ID"] for e in parse_bibtex(response.text).values()] == ["doe2026generative"]


# ---------------------------------------------------------------- RIS content, in process


@pytest.mark.asyncio
async def test_ris_records_survive_an_abstract_that_contains_er(export_db):
    response = await datasette_for(export_db).client.get("/ai4mat/papers.ris?_size=max&_sort=arxiv_id")
    assert response.status_code == 200
    records = rispy.loads(response.text)
    assert [r["id"] for r in records] == sorted(REAL_IDS + ["2611.00007", "2611.00008", "2611.00009"])
    assert all(line[2:6] == "  - " for line in response.text.split("\r\n") if line)
    hostile = next(r for r in records if r["id"] == "2611.00007")
    assert hostile == {
        "type_of_reference": "GEN", "id": "2611.00007", "authors": ["Smith and Wesson Consortium", "Zoë Ångström"],
        "title": "Hostile } title { with 100% #1 a_b ~ ^ <script>alert(1)</script> @misc{evil, x={y}} two lines \\",
        "year": "2026", "date": "2026/11/02", "urls": ["https://arxiv.org/abs/2611.00007"],
        "name_of_database": "arXiv", "accession_number": "arXiv:2611.00007v1",
        "abstract": "First line. ER - TY - JOUR TI - Injected Second line.", "notes": ["3 pages ER -"],
    }
    published = next(r for r in records if r["id"] == "2201.07569")
    assert published == {
        "type_of_reference": "JOUR", "id": "2201.07569",
        "authors": ["Simon Mellaerts", "Jin Won Seo", "Valeri Afanas'ev", "Michel Houssa", "Jean-Pierre Locquet"],
        "title": "On the origin of supertetragonality in BaTiO$_3$", "year": "2022", "date": "2022/01/19",
        "secondary_title": "Physical Review MATERIALS 6, 064410 (2022)", "doi": "10.1103/PhysRevMaterials.6.064410",
        "urls": ["https://arxiv.org/abs/2201.07569"], "name_of_database": "arXiv",
        "accession_number": "arXiv:2201.07569v1", "abstract": " ".join(REAL["2201.07569"]["summary"].split()),
    }


# ---------------------------------------------------------------- which pages export


@pytest.mark.asyncio
async def test_every_page_with_arxiv_id_exports_one_entry_per_paper(site_db):
    ds = datasette_for(site_db)
    pages = {
        "/ai4mat/new_today": ["2611.00002", "2611.00004"],
        "/ai4mat/by_author?name=Jane+Doe": ["2611.00001", "cond-mat/0102536"],
        "/ai4mat/by_category?category=cs.LG": ["2611.00002", "2611.00004", "2611.00001"],
        # Two versions of one paper: one entry, with the latest metadata.
        "/ai4mat/paper_history?arxiv_id=2611.00002": ["2611.00002"],
        "/ai4mat/papers?summary__contains=diffusion&_sort=arxiv_id": ["2611.00001", "2611.00004", "cond-mat/0102536"],
        "/ai4mat/papers/cond-mat~2F0102536": ["cond-mat/0102536"],  # a row page
        "/ai4mat/versions?_sort=run_id": ["2611.00001", "2611.00002", "cond-mat/0102536", "2611.00004"],
        "/ai4mat?sql=select+arxiv_id+from+paper_authors+where+name+%3D+%27Ann+Lee%27+order+by+arxiv_id": ["2611.00001", "2611.00004"],
    }
    for page, arxiv_ids in pages.items():
        html = await ds.client.get(page)
        assert html.status_code == 200, page
        for extension in ("bib", "ris"):
            path, _, query = page.partition("?")
            # The page links its exports beside .json and .csv.
            assert f'href="{path}.{extension}' in html.text, (page, extension)
            response = await ds.client.get(f"{path}.{extension}?{query}")
            assert response.status_code == 200, (page, response.text)
            if extension == "bib":
                assert [e["eprint"] for e in bibtexparser.parse_string(response.text).entries] == arxiv_ids, page
            else:
                assert [r["id"] for r in rispy.loads(response.text)] == arxiv_ids, page
    history = bibtexparser.parse_string((await ds.client.get("/ai4mat/paper_history.bib?arxiv_id=2611.00002")).text)
    assert history.entries[0]["title"] == "Graph networks screen perovskite catalysts at scale"
    response = await ds.client.get("/ai4mat/papers/cond-mat~2F0102536.ris")
    assert response.headers["content-disposition"] == 'attachment; filename="cond-mat_0102536.ris"'
    old_style = parse_bibtex((await ds.client.get("/ai4mat/by_author.bib?name=John+Roe")).text)
    assert old_style["cond-mat/0102536"]["url"] == "https://arxiv.org/abs/cond-mat/0102536"
    assert old_style["cond-mat/0102536"]["ID"] == "doe2001diffusion"


@pytest.mark.asyncio
async def test_pages_without_arxiv_id_offer_no_export_and_answer_400(site_db):
    ds = datasette_for(site_db)
    for page in ("/ai4mat/runs", "/ai4mat/papers_per_month", "/ai4mat/health"):
        html = await ds.client.get(page)
        assert html.status_code == 200 and ".json" in html.text
        assert ".bib" not in html.text and ".ris" not in html.text, page
    response = await ds.client.get("/ai4mat/papers_per_month.bib")
    assert (response.status_code, response.text) == (400, (
        "This page has no arxiv_id column, so it lists no papers to export as BibTeX. Export a page that "
        "lists papers instead, such as /ai4mat/papers.bib or /ai4mat/new_today.bib.\n"
    ))
    # An empty page of papers is an empty, valid file.
    response = await ds.client.get("/ai4mat/by_author.ris?name=Nobody")
    assert (response.status_code, response.text) == (200, "")


# ---------------------------------------------------------------- health


def hours_since(stamp: str) -> float:
    then = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    return (datetime.datetime.now(datetime.timezone.utc) - then).total_seconds() / 3600


def ago(hours: float) -> str:
    stamp = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=hours)
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def db_with_runs(path, runs: list[dict]):
    open_db(path).close()
    with sqlite3.connect(path) as conn:
        for run in runs:
            conn.execute(
                "insert into runs (id, started_at, finished_at, query, status, kind, error) values (?, ?, ?, 'q', ?, ?, ?)",
                [run["id"], run["finished_at"] or "2026-01-01T00:00:00Z", run["finished_at"], run["status"], run["kind"], run.get("error")],
            )
    return path


async def health(path) -> dict:
    rows = await get_rows(datasette_for(path), "/ai4mat/health.json")
    assert len(rows) == 1
    return rows[0]


@pytest.mark.asyncio
async def test_health_with_no_runs_says_never(tmp_path):
    assert await health(db_with_runs(tmp_path / "ai4mat.db", [])) == {
        "last_ok_run_id": None, "last_ok_finished_at": None, "age_hours": None,
        "failed_since": 0, "last_error": None, "status": "never",
    }


@pytest.mark.asyncio
async def test_health_counts_failed_harvests_since_the_last_good_one(tmp_path):
    path = db_with_runs(tmp_path / "ai4mat.db", [
        {"id": 1, "status": "failed", "kind": "harvest", "finished_at": "2026-01-01T00:00:00Z", "error": "before"},
        {"id": 2, "status": "ok", "kind": "harvest", "finished_at": "2026-03-01T06:00:00Z"},
        {"id": 3, "status": "failed", "kind": "harvest", "finished_at": "2026-03-02T06:00:00Z", "error": "HTTP 503"},
        {"id": 4, "status": "ok", "kind": "backfill", "finished_at": "2026-03-03T06:00:00Z"},  # not a daily harvest
        {"id": 5, "status": "failed", "kind": "backfill", "finished_at": "2026-03-03T07:00:00Z", "error": "backfill"},
        {"id": 6, "status": "failed", "kind": "harvest", "finished_at": "2026-03-04T06:00:00Z", "error": "interrupted"},
        {"id": 7, "status": "running", "kind": "harvest", "finished_at": None},
    ])
    row = await health(path)
    age = row.pop("age_hours")
    assert row == {
        "last_ok_run_id": 2, "last_ok_finished_at": "2026-03-01T06:00:00Z",
        "failed_since": 2, "last_error": "interrupted", "status": "stale",
    }
    assert isinstance(age, float) and abs(age - hours_since("2026-03-01T06:00:00Z")) < 0.01


@pytest.mark.asyncio
async def test_health_is_ok_within_72_hours_and_stale_after(tmp_path):
    for hours, status in ((2, "ok"), (71.5, "ok"), (72.5, "stale")):
        finished_at = ago(hours)
        (tmp_path / str(hours)).mkdir()
        path = db_with_runs(tmp_path / str(hours) / "ai4mat.db", [
            {"id": 1, "status": "failed", "kind": "harvest", "finished_at": "2026-01-01T00:00:00Z", "error": "old"},
            {"id": 2, "status": "ok", "kind": "harvest", "finished_at": finished_at},
        ])
        row = await health(path)
        age = row.pop("age_hours")
        assert row == {
            "last_ok_run_id": 2, "last_ok_finished_at": finished_at, "failed_since": 0, "last_error": None,
            "status": status,
        }, hours
        assert abs(age - hours) < 0.01, (hours, age)


@pytest.mark.asyncio
async def test_health_of_the_harvested_site(site_db):
    # Runs 1 and 2 succeeded, run 3 failed on arXiv's error feed (tests/site_data.py).
    row = await health(site_db)
    finished_at = row["last_ok_finished_at"]
    assert abs(row.pop("age_hours") - hours_since(finished_at)) < 0.01
    assert row == {
        "last_ok_run_id": 2, "last_ok_finished_at": finished_at, "failed_since": 1,
        "last_error": "arXiv API error (HTTP 400): incorrect id format for abc", "status": "ok",
    }


@pytest.mark.asyncio
async def test_exports_skip_counts_and_facets():
    """A table page exported counts no rows and computes no facets (2 s of 2.1 s at 1M papers)."""
    seen = []

    async def page(scope, receive, send):
        seen.append((scope["path"], scope["query_string"]))

    wrapped = load_export_plugin().asgi_wrapper(datasette=None)(page)
    for path, query in (("/ai4mat/papers.bib", b"_size=max"), ("/ai4mat/papers.ris", b""), ("/ai4mat/papers.json", b"_size=max")):
        await wrapped({"type": "http", "path": path, "query_string": query}, None, None)
    assert seen == [
        ("/ai4mat/papers.bib", b"_size=max&_nocount=1&_nofacet=1"),
        ("/ai4mat/papers.ris", b"_nocount=1&_nofacet=1"),
        ("/ai4mat/papers.json", b"_size=max"),
    ]


def load_export_plugin():
    spec = importlib.util.spec_from_file_location("ai4mat_export_under_test", PLUGINS_DIR / "ai4mat_export.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

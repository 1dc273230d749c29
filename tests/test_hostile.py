"""Hostile paper content served by the fake API, end to end through `ai4mat harvest` and `ai4mat readme`.

HOSTILE holds the inputs: script and img-onerror tags in titles, abstracts and author names, the
README markers inside an abstract, markdown that opens blocks (unclosed fences, <pre>, headings,
tables, setext underlines, CR line ends), a 100 KB abstract, C0/C1 control characters, emoji,
right-to-left text with bidi overrides, 500 authors, SQL and entity tricks.

Checks: every paper is stored exactly as arXiv's XML says (C0 controls, which XML forbids, are
dropped instead of failing the page); the FTS index is sound and finds them; the README section
has exactly one start and one end marker and every paper written whole and in order, verbatim
but for "<!--" (issue 2's rule), so only the two markers open a comment. Datasette and browser
checks are in test_serving_safety.py.
"""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path

import feedparser
import pytest
from click.testing import CliRunner
from datasette.app import Datasette

from harvest.cli import cli
from harvest.parse import ArxivAPIError, ParseError, parse_feed
from harvest.readme import END_MARKER, START_MARKER

from .dumps import integrity
from .fake_arxiv import FakeArxiv, make_paper, render_feed
from .hostile_data import HOSTILE, HUGE, hostile_papers
from .site_data import PLUGINS_DIR, load_metadata

def stored_form(paper: dict, overrides: dict) -> dict:
    expected = {"title": " ".join(paper["title"].split()), "summary": paper["summary"].strip(), "authors": paper["authors"]}
    return expected | overrides


@pytest.fixture(scope="module")
def hostile_db(tmp_path_factory) -> Path:
    """A dataset harvested from the hostile papers, over three pages."""
    folder = tmp_path_factory.mktemp("hostile")
    config = folder / "config.json"
    config.write_text(json.dumps({"query": "q", "delay_seconds": 0, "page_size": 5}))
    with FakeArxiv() as fake:
        fake.papers = hostile_papers()
        result = CliRunner().invoke(
            cli, ["harvest", "--db", str(folder / "ai4mat.db"), "--config", str(config), "--api-url", fake.url, "--delay", "0"],
            catch_exceptions=False,
        )
    assert (result.exit_code, result.output) == (0, "harvest: 12 new, 0 updated, 0 unchanged (3 requests)\n")
    return folder / "ai4mat.db"


def query(path: Path, sql: str, params=()) -> list[tuple]:
    conn = sqlite3.connect(str(path))
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_paper_is_stored_exactly(name, hostile_db):
    number = list(HOSTILE).index(name) + 1
    paper = hostile_papers()[number - 1]
    expected = stored_form(paper, HOSTILE[name][1])
    ((title, summary, authors, comment),) = query(
        hostile_db, "SELECT title, summary, authors, comment FROM papers WHERE arxiv_id = ?", [paper["arxiv_id"]]
    )
    assert (title, summary, json.loads(authors)) == (expected["title"], expected["summary"], expected["authors"])
    assert comment == paper.get("comment")
    names = query(hostile_db, "SELECT name FROM paper_authors WHERE arxiv_id = ? ORDER BY position", [paper["arxiv_id"]])
    assert [row[0] for row in names] == expected["authors"]


def test_hostile_dataset_is_sound_and_searchable(hostile_db):
    assert integrity(hostile_db) == ("ok", "ok")
    assert query(hostile_db, "SELECT count(*) FROM papers") == [(12,)]
    search = "SELECT p.arxiv_id FROM papers_fts JOIN papers p ON p.rowid = papers_fts.rowid WHERE papers_fts MATCH ? ORDER BY 1"
    assert query(hostile_db, search, ['"المواد"']) == [("2611.00007",)]
    assert query(hostile_db, search, ["perovskites"]) == [("2611.00005",)]
    assert query(hostile_db, search, ['"DROP TABLE papers"']) == [("2611.00009",)]
    assert query(hostile_db, "SELECT count(*) FROM paper_authors WHERE arxiv_id = '2611.00008'") == [(500,)]


def test_readme_section_stays_well_formed(hostile_db, tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"query": "q", "timezone": "UTC", "timezone_label": "UTC"}))
    readme = tmp_path / "README.md"
    readme.write_text("# ArXiv Daily\n\nIntro.\n")
    args = ["readme", "--db", str(hostile_db), "--readme", str(readme), "--config", str(config)]
    assert CliRunner().invoke(cli, args, catch_exceptions=False).output == f"readme: {readme} updated\n"
    text = readme.read_text()
    assert (text.count(START_MARKER), text.count(END_MARKER)) == (1, 1)
    assert text.startswith("# ArXiv Daily\n\nIntro.\n") and text.endswith(END_MARKER)
    # The 100 KB abstract is cut, visibly, at 5,000 characters; the 500 authors at 200.
    assert HUGE.strip() not in text
    assert f"**Summary:** {HUGE.strip()[:5000]} … [cut: 5,000 of {len(HUGE.strip()):,} characters shown]...\n\n" in text
    assert "**Authors:** Author 001, Author 002, " in text and ", Author 200, … and 300 more\n\n" in text

    # Every paper is there, in order, written verbatim but for "<!--" (the original tracker's
    # format, which its readers' tools parse): each block whole, each at its own number.
    papers = query(hostile_db, "SELECT arxiv_id, version, title, summary, authors FROM papers ORDER BY updated DESC, arxiv_id DESC")
    assert len(papers) == 12
    position = text.index(START_MARKER)
    for number, (arxiv_id, version, title, summary, authors) in enumerate(papers, 1):
        authors = json.loads(authors)
        authors = ", ".join(authors) if len(authors) <= 200 else ", ".join(authors[:200]) + f", … and {len(authors) - 200} more"
        if len(summary) > 5000:
            summary = f"{summary[:5000]} … [cut: 5,000 of {len(summary):,} characters shown]"
        block = (
            f"### {number}. {title.replace('<!--', '&lt;!--')}\n\n"
            f"**Authors:** {authors.replace('<!--', '&lt;!--')}\n\n"
        )
        tail = (
            f"**ID:** {arxiv_id}v{version}\n\n"
            f"**Link:** [http://arxiv.org/abs/{arxiv_id}v{version}](http://arxiv.org/abs/{arxiv_id}v{version})\n\n"
            f"**Summary:** {summary.replace('<!--', '&lt;!--')}...\n\n---\n\n"
        )
        position = text.index(block, position)
        position = text.index(tail, position)
    assert text.index(END_MARKER) > position
    # No "<!--" from data survives to open a comment: the only comments are the two markers.
    assert text.count("<!--") == 2
    # A second run with the same data changes nothing.
    assert CliRunner().invoke(cli, args, catch_exceptions=False).output == f"readme: {readme} unchanged\n"


def test_control_character_in_one_abstract_does_not_block_the_harvest(fake_arxiv, tmp_path, sleeps):
    """XML forbids C0 controls; one in one abstract once made every attempt at the page fail."""
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"query": "q", "delay_seconds": 0}))
    fake_arxiv.papers = [make_paper(1, summary="Escape \x1b[31m red and bell \x07."), make_paper(2)]
    result = CliRunner().invoke(
        cli, ["harvest", "--db", str(tmp_path / "ai4mat.db"), "--config", str(config), "--api-url", fake_arxiv.url],
        catch_exceptions=False,
    )
    assert (result.exit_code, result.output) == (0, "harvest: 2 new, 0 updated, 0 unchanged (1 request)\n")
    assert query(tmp_path / "ai4mat.db", "SELECT summary FROM papers WHERE arxiv_id = '2611.00001'") == [("Escape [31m red and bell .",)]


def test_references_to_forbidden_characters_do_not_block_the_harvest(fake_arxiv, tmp_path, sleeps):
    """`&#xD800;` made feedparser raise UnicodeEncodeError: a traceback, the run left `running`."""
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"query": "q", "delay_seconds": 0}))
    page = render_feed([make_paper(1, summary="SUMMARY"), make_paper(2)], total=2, start=0)
    fake_arxiv.raw_pages = {1: page.replace(b"SUMMARY", b"a&#xD800;b&#55296;c&#1;d&#x1b;e&#xFFFE;f&#99999999999;g&#x1F600;&#9;&#60;")}
    result = CliRunner().invoke(
        cli, ["harvest", "--db", str(tmp_path / "ai4mat.db"), "--config", str(config), "--api-url", fake_arxiv.url],
        catch_exceptions=False,
    )
    assert (result.exit_code, result.output) == (0, "harvest: 2 new, 0 updated, 0 unchanged (1 request)\n")
    assert query(tmp_path / "ai4mat.db", "SELECT summary FROM papers WHERE arxiv_id = '2611.00001'") == [("abcdefg😀\t<",)]


# An entry whose <updated> was mangled away gets feedparser's published-date fallback, with a warning.
@pytest.mark.filterwarnings("ignore:To avoid breaking existing software:DeprecationWarning")
def test_parser_answers_any_mangled_page_with_papers_or_a_parse_error():
    """300 seeded mutations of a real page (cuts, flipped and inserted bytes, hostile
    references): parse_feed returns a Feed or raises ParseError / ArxivAPIError, nothing else."""
    rng = random.Random(20261122)
    page = render_feed([make_paper(n, **fields) for n, (fields, _) in enumerate(list(HOSTILE.values())[:4], 1)], total=4, start=0)
    inserts = [b"&#xD800;", b"&#1;", b"\x00", b"\xff\xfe", b"<![CDATA[", b"]]>", b"<!DOCTYPE x [<!ENTITY a 'b'>]>", b"&a;", b"</entry>", b"<entry>", b"\xc3"]
    outcomes = {"feed": 0, "parse error": 0, "arxiv error": 0}
    for _ in range(300):
        body = bytearray(page)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(body))
            action = rng.random()
            if action < 0.3:
                body[at] = rng.randrange(256)
            elif action < 0.7:
                body[at:at] = rng.choice(inserts)
            else:
                del body[at : at + rng.randint(1, 200)]
        try:
            parse_feed(bytes(body))
            outcomes["feed"] += 1
        except ParseError:
            outcomes["parse error"] += 1
        except ArxivAPIError:
            outcomes["arxiv error"] += 1
    assert sum(outcomes.values()) == 300 and outcomes["feed"] > 0 and outcomes["parse error"] > 0, outcomes


def with_doctype(doctype: bytes, summary: bytes) -> bytes:
    page = render_feed([make_paper(1, summary="SUMMARY")], total=1, start=0)
    declaration = b"<?xml version='1.0' encoding='UTF-8'?>"
    return page.replace(declaration, declaration + doctype).replace(b"SUMMARY", summary)


def test_external_entity_is_not_read():
    """XXE: a feed naming a local file as an entity gets the entity dropped, never the file."""
    feed = parse_feed(with_doctype(b"<!DOCTYPE feed [<!ENTITY xxe SYSTEM 'file:///etc/passwd'>]>", b"a&xxe;b"))
    assert [paper["summary"] for paper in feed.papers] == ["ab"]


def test_entity_expansion_bomb_is_refused():
    """Billion laughs: expat's amplification limit stops it; the page is a ParseError (retried)."""
    names = b"abcdefgh"  # each entity is ten of the one before: &h; is 10^8 letters
    entities = b"<!ENTITY a 'aaaaaaaaaa'>" + b"".join(
        b"<!ENTITY %c '%s'>" % (names[i], b"&%c;" % names[i - 1] * 10) for i in range(1, len(names))
    )
    with pytest.raises(ParseError, match=r"limit on input amplification factor"):
        parse_feed(with_doctype(b"<!DOCTYPE feed [" + entities + b"]>", b"&h;"))


def test_implausible_numbers_cannot_crash_the_store(fake_arxiv, tmp_path, sleeps):
    """A version past SQLite's integers raised OverflowError in the store: a traceback and the
    run left `running`, on every run. Now the entry is skipped as unreadable."""
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"query": "q", "delay_seconds": 0}))
    fake_arxiv.papers = [make_paper(1, version=99999999999999999999), make_paper(2, version=0), make_paper(3)]
    result = CliRunner().invoke(
        cli, ["harvest", "--db", str(tmp_path / "ai4mat.db"), "--config", str(config), "--api-url", fake_arxiv.url],
        catch_exceptions=False,
    )
    assert (result.exit_code, result.output) == (0, "harvest: 1 new, 0 updated, 0 unchanged (1 request); 2 unreadable entries skipped\n")
    assert query(tmp_path / "ai4mat.db", "SELECT arxiv_id, version FROM papers") == [("2611.00003", 1)]
    assert query(tmp_path / "ai4mat.db", "SELECT status, skipped FROM runs") == [("ok", 2)]


@pytest.mark.parametrize("total", ["²", "١٢", "99999999999", "-5", "1e3", ""])
def test_implausible_total_results_is_an_unreadable_page(total):
    page = render_feed([make_paper(1)], total=1, start=0).replace(b"<opensearch:totalResults>1<", f"<opensearch:totalResults>{total}<".encode())
    with pytest.raises(ParseError, match=r"^response is not an arXiv API feed \(no opensearch:totalResults\)$"):
        parse_feed(page)


# ---------------------------------------------------------------- bad bytes and impossible values from arXiv

FIXTURES = Path(__file__).parent / "fixtures"
REAL_PAGES = ["atom_2026_all-testing_100entries.xml", "atom_2017_cs-ml-cats_lastUpdated_start0_100entries.xml"]
# A stray byte, an encoded surrogate, an overlong "/", a code point past U+10FFFF.
BAD_UTF8 = {"xff": b"\xff", "surrogate": b"\xed\xa0\x80", "overlong": b"\xc0\xaf", "past-unicode": b"\xf4\x90\x80\x80"}


def with_bytes_in_first_summary(page: bytes, bad: bytes) -> bytes:
    """`bad` after the first letter of the page's first abstract (an ASCII letter in both pages)."""
    at = page.index(b"<summary>", page.index(b"<entry>")) + len(b"<summary>")
    at += len(page[at:]) - len(page[at:].lstrip()) + 1
    return page[:at] + bad + page[at:]


def with_text_after_first_letter(text: str, inserted: str) -> str:
    return text[:1] + inserted + text[1:]


@pytest.mark.parametrize("bad", BAD_UTF8.values(), ids=BAD_UTF8.keys())
@pytest.mark.parametrize("name", REAL_PAGES, ids=["new-backend", "old-backend"])
def test_invalid_utf8_in_one_entry_garbles_no_other_paper(name, bad):
    """One invalid byte made feedparser read the whole page as another charset: every non-ASCII
    character of every paper came out garbled (`Schrödinger` as `SchrĂśdinger`), for good."""
    page = (FIXTURES / name).read_bytes()
    clean = parse_feed(page)
    assert sum(any(ord(c) > 127 for c in p["title"] + p["summary"] + "".join(p["authors"])) for p in clean.papers) >= 9
    feed = parse_feed(with_bytes_in_first_summary(page, bad))
    assert feed.papers[1:] == clean.papers[1:]
    assert feed.papers[0] == clean.papers[0] | {"summary": with_text_after_first_letter(clean.papers[0]["summary"], "\ufffd" * len(bad))}
    assert (feed.total_results, feed.skipped) == (clean.total_results, [])


@pytest.mark.parametrize("raw", ["\ufffe", "\uffff"], ids=["U+FFFE", "U+FFFF"])
def test_raw_characters_xml_forbids_are_dropped(raw):
    """A raw U+FFFE / U+FFFF made the page "not well-formed" on every retry and every run."""
    page = (FIXTURES / REAL_PAGES[0]).read_bytes()
    clean = parse_feed(page)
    assert parse_feed(with_bytes_in_first_summary(page, f"a{raw}b{raw}".encode())).papers == [
        clean.papers[0] | {"summary": with_text_after_first_letter(clean.papers[0]["summary"], "ab")}
    ] + clean.papers[1:]


def test_harvest_of_a_page_with_a_bad_byte_stores_every_other_paper_exactly(fake_arxiv, tmp_path, sleeps):
    """End to end: a real recorded page served with one invalid byte in its first abstract gives
    the same tables as the clean page, but for U+FFFD in that one abstract."""
    page = (FIXTURES / REAL_PAGES[0]).read_bytes()
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"query": "q", "delay_seconds": 0, "max_results": 100}))
    tables = {}
    for label, body in (("clean", page), ("bad", with_bytes_in_first_summary(page, b"\xff"))):
        fake_arxiv.raw_pages = {len(fake_arxiv.requests) + 1: body}
        db = tmp_path / f"{label}.db"
        result = CliRunner().invoke(
            cli, ["harvest", "--db", str(db), "--config", str(config), "--api-url", fake_arxiv.url], catch_exceptions=False,
        )
        assert result.exit_code == 0, result.output
        assert result.output.startswith("harvest: 100 new, 0 updated, 0 unchanged (1 request)"), result.output
        tables[label] = [query(db, f"SELECT * FROM {table} ORDER BY 1, 2") for table in ("papers", "versions", "paper_authors")]
        assert integrity(db) == ("ok", "ok")
    first_summary = parse_feed(page).papers[0]["summary"]
    expected = [
        [tuple(with_text_after_first_letter(cell, "\ufffd") if cell == first_summary else cell for cell in row) for row in table]
        for table in tables["clean"]
    ]
    assert tables["bad"] == expected
    assert query(tmp_path / "bad.db", "SELECT count(*) FROM papers WHERE instr(summary, char(65533))") == [(1,)]
    assert query(tmp_path / "bad.db", "SELECT count(*) FROM versions WHERE instr(summary, char(65533))") == [(1,)]


@pytest.mark.parametrize(
    "raw, stored",
    [
        ("2026-11-20T08:00:00Z", "2026-11-20T08:00:00Z"),
        ("2017-09-29T00:00:00-04:00", "2017-09-29T04:00:00Z"),
        ("0999-01-01T00:00:00Z", "0999-01-01T00:00:00Z"),  # time.strftime wrote "999-01-01..."
        ("0000-01-01T00:00:00Z", None),  # was "0-01-01T00:00:00Z", and feed.atom answered 500
        ("2026-02-30T00:00:00Z", None),  # feedparser rolls it over to March 2
        ("2026-13-01T00:00:00Z", None),
        ("2026-01-01T25:00:00Z", None),
        ("0001-01-01T00:00:00+01:00", None),  # before year 1 in UTC
        ("yesterday", None),
    ],
)
def test_stored_dates_have_four_digit_years_or_are_null(raw, stored, caplog):
    page = render_feed([make_paper(1, updated=raw, published=raw)], total=1, start=0)
    [paper] = parse_feed(page).papers
    assert (paper["published"], paper["updated"]) == (stored, stored)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == ([] if stored else [
        f"entry http://arxiv.org/abs/2611.00001v1: published {raw!r} is not a date; stored as null",
        f"entry http://arxiv.org/abs/2611.00001v1: updated {raw!r} is not a date; stored as null",
    ])


@pytest.mark.asyncio
async def test_impossible_dates_keep_the_feed_and_every_canned_query_working(fake_arxiv, tmp_path, sleeps):
    """`<updated>0000-01-01T00:00:00Z</updated>` was stored as `0-01-01T00:00:00Z`: feed.atom
    answered 500, the daily job stopped at its smoke check, nothing was released."""
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"query": "q", "delay_seconds": 0}))
    fake_arxiv.papers = [
        make_paper(1, updated="0000-01-01T00:00:00Z", published="0000-01-01T00:00:00Z"),
        make_paper(2, updated="0999-01-01T00:00:00Z", published="0999-01-01T00:00:00Z"),
        make_paper(3, updated="2026-11-20T08:00:00Z"),
    ]
    db = tmp_path / "ai4mat.db"
    result = CliRunner().invoke(cli, ["harvest", "--db", str(db), "--config", str(config), "--api-url", fake_arxiv.url], catch_exceptions=False)
    assert (result.exit_code, result.output) == (0, "harvest: 3 new, 0 updated, 0 unchanged (1 request)\n")
    assert query(db, "SELECT arxiv_id, published, updated FROM papers ORDER BY arxiv_id") == [
        ("2611.00001", None, None),
        ("2611.00002", "0999-01-01T00:00:00Z", "0999-01-01T00:00:00Z"),
        ("2611.00003", "2026-11-20T08:00:00Z", "2026-11-20T08:00:00Z"),
    ]
    finished_at = query(db, "SELECT finished_at FROM runs")[0][0]
    metadata = load_metadata()
    ds = Datasette([], immutables=[str(db)], metadata=metadata, plugins_dir=str(PLUGINS_DIR))
    params = "q=generative&name=Author%201%20A&category=cs.LG&arxiv_id=2611.00001"
    for name in metadata["databases"]["ai4mat"]["queries"]:
        for suffix in (".json", ""):  # the JSON and the HTML page
            response = await ds.client.get(f"/ai4mat/{name}{suffix}?{params}")
            assert response.status_code == 200, (name, suffix, response.text[:300])
    for page in ("/ai4mat/papers", "/ai4mat/papers/2611~2E00001", "/ai4mat/versions"):
        assert (await ds.client.get(page)).status_code == 200, page
    response = await ds.client.get("/ai4mat/feed.atom")
    assert response.status_code == 200, response.text[:300]
    feed = feedparser.parse(response.content)
    assert not feed.bozo, feed.bozo_exception
    assert sorted((e.id, e.updated) for e in feed.entries) == [
        ("https://arxiv.org/abs/2611.00001v1", finished_at.replace("Z", "+00:00")),
        ("https://arxiv.org/abs/2611.00002v1", "0999-01-01T00:00:00+00:00"),
        ("https://arxiv.org/abs/2611.00003v1", "2026-11-20T08:00:00+00:00"),
    ]

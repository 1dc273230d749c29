"""Parsing real recorded arXiv responses (old and new backends) into plain records."""

from pathlib import Path

import pytest

from harvest.parse import ArxivAPIError, ParseError, parse_feed, split_id

from .fake_arxiv import make_paper, render_feed

FIXTURES = Path(__file__).parent / "fixtures"


def parse_fixture(name):
    return parse_feed((FIXTURES / name).read_bytes())


OLD = "atom_2017_cs-ml-cats_lastUpdated_start0_100entries.xml"
NEW = "atom_2026_all-testing_100entries.xml"


def test_old_backend_page():
    feed = parse_fixture(OLD)
    assert (feed.total_results, feed.start_index, len(feed.papers), feed.skipped) == (48169, 0, 100, [])
    first = feed.papers[0]
    assert {k: v for k, v in first.items() if k != "summary"} == {
        "arxiv_id": "1709.10089",
        "version": 1,
        "title": "Overcoming Exploration in Reinforcement Learning with Demonstrations",
        "authors": ["Ashvin Nair", "Bob McGrew", "Marcin Andrychowicz", "Wojciech Zaremba", "Pieter Abbeel"],
        "primary_category": "cs.LG",
        "categories": ["cs.LG", "cs.AI", "cs.NE", "cs.RO"],
        "classifications": [],
        "published": "2017-09-28T17:51:48Z",
        "updated": "2017-09-28T17:51:48Z",
        "comment": "8 pages",
        "journal_ref": None,
        "doi": None,
        "abs_url": "http://arxiv.org/abs/1709.10089v1",
        "pdf_url": "http://arxiv.org/pdf/1709.10089v1",
    }
    # The old backend starts abstracts with two spaces and hard-wraps them: ends stripped, inner newlines kept.
    assert first["summary"].startswith("Exploration in environments with sparse rewards has been a persistent problem\nin reinforcement")
    assert first["summary"].endswith("often ends up\noutperforming the demonstrator policy.")
    assert (len(first["summary"]), first["summary"].count("\n")) == (1104, 14)


def test_old_backend_wrapped_title_is_collapsed():
    feed = parse_fixture(OLD)
    assert feed.papers[1]["title"] == (
        "Learning Complex Dexterous Manipulation with Deep Reinforcement Learning and Demonstrations"
    )
    assert feed.papers[1]["authors"] == [
        "Aravind Rajeswaran", "Vikash Kumar", "Abhishek Gupta", "John Schulman", "Emanuel Todorov", "Sergey Levine",
    ]


def test_old_backend_later_version():
    paper = parse_fixture(OLD).papers[9]
    assert paper == {
        "arxiv_id": "1704.06960",
        "version": 3,
        "title": "Translating Neuralese",
        "summary": (
            "Several approaches have recently been proposed for learning decentralized\ndeep multiagent policies "
            "that coordinate via a differentiable communication\nchannel. While these policies are effective for "
            "many tasks, interpretation of\ntheir induced communication strategies has remained a challenge. Here "
            "we\npropose to interpret agents' messages by translating them. Unlike in typical\nmachine translation "
            "problems, we have no parallel data to learn from. Instead\nwe develop a translation model based on the "
            "insight that agent messages and\nnatural language strings mean the same thing if they induce the same "
            "belief\nabout the world in a listener. We present theoretical guarantees and empirical\nevidence that "
            "our approach preserves both the semantics and pragmatics of\nmessages by ensuring that players "
            "communicating through a translation layer do\nnot suffer a substantial loss in reward relative to "
            "players with a common\nlanguage."
        ),
        "authors": ["Jacob Andreas", "Anca Dragan", "Dan Klein"],
        "primary_category": "cs.CL",
        "categories": ["cs.CL", "cs.NE"],
        "classifications": [],
        "published": "2017-04-23T18:46:42Z",
        "updated": "2017-09-28T15:10:24Z",
        "comment": None,
        "journal_ref": None,
        "doi": None,
        "abs_url": "http://arxiv.org/abs/1704.06960v3",
        "pdf_url": "http://arxiv.org/pdf/1704.06960v3",
    }


def test_old_backend_last_entry():
    paper = parse_fixture(OLD).papers[99]
    assert (paper["arxiv_id"], paper["version"], paper["title"], paper["categories"]) == (
        "1709.09422", 1, "Light field super resolution through controlled micro-shifts of light field sensor", ["cs.CV"],
    )
    assert paper["authors"] == ["M. Umair Mukati", "Bahadir K. Gunturk"]


def test_new_backend_page():
    feed = parse_fixture(NEW)
    assert (feed.total_results, feed.start_index, len(feed.papers)) == (214881, 0, 100)
    first = feed.papers[0]
    assert {k: v for k, v in first.items() if k != "summary"} == {
        "arxiv_id": "2202.12139",
        "version": 1,
        "title": "Testing Deep Learning Models: A First Comparative Study of Multiple Testing Techniques",
        "authors": ["Mohit Kumar Ahuja", "Arnaud Gotlieb", "Helge Spieker"],
        "primary_category": "cs.SE",
        "categories": ["cs.SE", "cs.LG"],
        "classifications": [],
        "published": "2022-02-24T15:05:19Z",
        "updated": "2022-02-24T15:05:19Z",
        "comment": "Artificial Intelligence in Software Testing 2022 workshop @ ICST 2022",
        "journal_ref": (
            "Artificial Intelligence in Software Testing @ 2022 IEEE International Conference on Software "
            "Testing, Verification and Validation Workshops (ICSTW)"
        ),
        "doi": "10.1109/ICSTW55395.2022.00035",
        "abs_url": "https://arxiv.org/abs/2202.12139v1",
        "pdf_url": "https://arxiv.org/pdf/2202.12139v1",
    }
    assert first["summary"].startswith("Deep Learning (DL) has revolutionized")
    assert first["summary"].endswith("and discuss its results.")


def test_new_backend_ninth_version_and_accents():
    feed = parse_fixture(NEW)
    ninth = feed.papers[25]
    assert (ninth["arxiv_id"], ninth["version"], ninth["published"], ninth["updated"]) == (
        "2409.05654", 9, "2024-09-09T14:21:19Z", "2025-05-08T20:52:40Z",
    )
    assert ninth["authors"] == ["Nick W. Koning"]
    assert feed.papers[1]["authors"] == ["Aurora Ramírez", "Mario Berrios", "José Raúl Romero", "Robert Feldt"]


def test_new_backend_old_style_id_in_search_results():
    paper = parse_fixture(NEW).papers[99]
    assert (paper["arxiv_id"], paper["version"], paper["primary_category"], paper["doi"]) == (
        "gr-qc/0103067", 1, "gr-qc", "10.1007/3-540-40988-2_10",
    )
    assert paper["journal_ref"] == "Lect.Notes Phys.562:195-212,2001"
    assert paper["authors"] == ["Mark P. Haugan", "C. Lämmerzahl"]


def test_new_backend_keeps_inner_newlines():
    paper = parse_fixture(NEW).papers[9]
    assert paper["arxiv_id"] == "1812.11470"
    assert (len(paper["summary"]), paper["summary"].count("\n")) == (1837, 3)


def test_old_style_id_list_response():
    feed = parse_fixture("atom_2026_idlist_oldstyle_astro-ph_0601001.xml")
    assert (feed.total_results, len(feed.papers)) == (1, 1)
    paper = feed.papers[0]
    assert {k: paper[k] for k in ("arxiv_id", "version", "primary_category", "categories", "journal_ref", "doi", "abs_url")} == {
        "arxiv_id": "astro-ph/0601001",
        "version": 1,
        "primary_category": "astro-ph",
        "categories": ["astro-ph"],
        "journal_ref": "ActaAstron.56:1-50,2006",
        "doi": None,
        "abs_url": "https://arxiv.org/abs/astro-ph/0601001v1",
    }
    assert paper["authors"] == ["Andrew Gould", "Susan Dorsher", "B. Scott Gaudi", "Andrzej Udalski"]
    # XML entities in the abstract come back as plain text.
    assert "Gould & Morgan (2003)" in paper["summary"] and "V_max<17.5" in paper["summary"]


def test_empty_feed():
    feed = parse_fixture("atom_2026_empty_idlist_0000.0000.xml")
    assert (feed.total_results, feed.papers, feed.skipped) == (0, [], [])


def test_error_feed_raises_with_arxiv_message():
    with pytest.raises(ArxivAPIError, match="^incorrect id format for abc$"):
        parse_fixture("atom_2026_error_incorrect_id_format_http400.xml")


@pytest.mark.parametrize(
    "body, message",
    [
        (b"<html><body><h1>503 Service Unavailable</h1></body></html>", "not an arXiv API feed"),
        (b"not xml at all", "not well-formed XML"),
        (b"", "not"),
        ((FIXTURES / NEW).read_bytes()[:50_000], "not well-formed XML"),
    ],
    ids=["html", "text", "empty-body", "truncated"],
)
def test_unusable_bodies_raise_parse_error(body, message):
    with pytest.raises(ParseError, match=message):
        parse_feed(body)


@pytest.mark.parametrize(
    "given, expected",
    [
        ("http://arxiv.org/abs/2512.04045v1", ("2512.04045", 1)),
        ("http://arxiv.org/abs/0704.0001v12", ("0704.0001", 12)),
        ("http://arxiv.org/abs/cond-mat/0603304v2", ("cond-mat/0603304", 2)),
        ("http://arxiv.org/abs/solv-int/9901001v1", ("solv-int/9901001", 1)),
        ("http://arxiv.org/abs/math.GT/0309136v3", ("math.GT/0309136", 3)),
        ("http://arxiv.org/abs/0704.0001", ("0704.0001", None)),
        ("cond-mat/0102536", ("cond-mat/0102536", None)),
    ],
)
def test_split_id(given, expected):
    assert split_id(given) == expected


@pytest.mark.parametrize(
    "given",
    [
        "https://arxiv.org/api/errors#incorrect_id_format_for_abc",
        # Unanchored, these were read as the real ids their digits end with (2603.00011,
        # cond-mat/0102536) and shadowed those papers.
        "http://arxiv.org/abs/12603.00011v1",
        "http://arxiv.org/abs/x2603.00011v1",
        "12603.00011",
        "http://arxiv.org/abs/cond-mat/10102536v1",
        "http://example.org/2603.00011v1",
        "http://arxiv.org/pdf/2603.00011v1",
    ],
)
def test_split_id_rejects_non_ids(given):
    with pytest.raises(ValueError, match="not an arXiv id"):
        split_id(given)


def test_entry_with_a_longer_id_does_not_shadow_the_real_paper():
    bogus = make_paper(1, arxiv_id="12603.00011", title="Not an arXiv id")
    real = make_paper(2, arxiv_id="2603.00011", title="The real paper")
    feed = parse_feed(render_feed([bogus, real], total=2, start=0))
    assert [(p["arxiv_id"], p["title"]) for p in feed.papers] == [("2603.00011", "The real paper")]
    assert feed.skipped == ["not an arXiv id: 'http://arxiv.org/abs/12603.00011v1'"]


def test_2007_entry_without_version_takes_it_from_abs_link():
    paper = make_paper(1, arxiv_id="0704.0001", version=1, entry_id="http://arxiv.org/abs/0704.0001")
    feed = parse_feed(render_feed([paper], total=1, start=0, style="old"))
    assert [(p["arxiv_id"], p["version"]) for p in feed.papers] == [("0704.0001", 1)]


def test_paper_titled_zero_is_a_paper():
    feed = parse_feed(render_feed([make_paper(7, title="0")], total=1, start=0))
    assert [p["title"] for p in feed.papers] == ["0"]


def test_unreadable_entry_is_skipped_and_reported():
    bad = make_paper(2, entry_id="http://arxiv.org/abs/not-an-id")
    feed = parse_feed(render_feed([make_paper(1), bad, make_paper(3)], total=3, start=0))
    assert [p["arxiv_id"] for p in feed.papers] == ["2611.00001", "2611.00003"]
    assert feed.skipped == ["not an arXiv id: 'http://arxiv.org/abs/not-an-id'"]

"""The README section: the original tracker's format byte for byte, built from the database."""

from zoneinfo import ZoneInfo

import pytest
import sqlite_utils

from harvest.readme import END_MARKER, START_MARKER, ReadmeError, render_section, replace_section
from harvest.store import ensure_db_shape, finish_run, save_papers, start_run

from .cycles import one_run_per_cycle

SGT = ZoneInfo("Asia/Singapore")


def paper(arxiv_id, version, title, updated, **fields):
    record = {
        "arxiv_id": arxiv_id, "version": version, "title": title,
        "summary": f"Abstract of {title}.\nSecond line.", "authors": ["Ada Lovelace", "Alan Turing"],
        "primary_category": "cond-mat.mtrl-sci", "categories": ["cond-mat.mtrl-sci"],
        "published": "2026-11-19T08:00:00Z", "updated": updated, "comment": None, "journal_ref": None,
        "doi": None, "abs_url": None, "pdf_url": None,
    }
    record.update(fields)
    return record


@pytest.fixture
def db():
    database = sqlite_utils.Database(memory=True)
    ensure_db_shape(database)
    return database


def record_run(db, papers, finished_at="2025-07-23T22:18:40Z"):
    """A daily run, in an announcement cycle after the previous run's (as the original tracker ran)."""
    run_id = start_run(db, "q")
    with db.atomic():
        counts = save_papers(db, run_id, papers)
        finish_run(db, run_id, counts)
    db["runs"].update(run_id, {"finished_at": finished_at})
    one_run_per_cycle(db)
    return run_id


def test_section_lists_new_and_updated_papers_newest_first(db):
    record_run(db, [paper("2507.00001", 1, "Old", "2025-07-20T00:00:00Z")], finished_at="2025-07-22T22:00:00Z")
    record_run(db, [
        paper("2507.00001", 2, "Old, revised", "2025-07-23T09:00:00Z", published="2025-07-20T00:00:00Z"),
        paper("cond-mat/0102536", 1, "Zero", "2001-02-28T12:00:00Z", published="2001-02-28T12:00:00Z",
              authors=["Solo Author"], primary_category="cond-mat.str-el"),
        paper("2507.00002", 1, "0", "2025-07-23T10:00:00Z"),
    ])
    assert render_section(db, zone=SGT) == """<!-- ARXIV_PAPERS_START -->

## New Papers (3)

*Last updated: 2025-07-24 06:18:40 (SGT)*

### 1. 0

**Authors:** Ada Lovelace, Alan Turing

**Published:** 2026-11-19

**Category:** cond-mat.mtrl-sci

**ID:** 2507.00002v1

**Link:** [http://arxiv.org/abs/2507.00002v1](http://arxiv.org/abs/2507.00002v1)

**Summary:** Abstract of 0.
Second line....

---

### 2. Old, revised

**Authors:** Ada Lovelace, Alan Turing

**Published:** 2025-07-20

**Category:** cond-mat.mtrl-sci

**ID:** 2507.00001v2

**Link:** [http://arxiv.org/abs/2507.00001v2](http://arxiv.org/abs/2507.00001v2)

**Summary:** Abstract of Old, revised.
Second line....

---

### 3. Zero

**Authors:** Solo Author

**Published:** 2001-02-28

**Category:** cond-mat.str-el

**ID:** cond-mat/0102536v1

**Link:** [http://arxiv.org/abs/cond-mat/0102536v1](http://arxiv.org/abs/cond-mat/0102536v1)

**Summary:** Abstract of Zero.
Second line....

---


<!-- ARXIV_PAPERS_END -->"""


def test_no_new_papers_message_with_the_runs_stamp(db):
    record_run(db, [paper("2507.00001", 1, "Old", "2025-07-20T00:00:00Z")])
    record_run(db, [paper("2507.00001", 1, "Old", "2025-07-20T00:00:00Z")], finished_at="2025-07-25T23:59:59Z")
    assert render_section(db, zone=ZoneInfo("UTC"), label="UTC") == (
        "<!-- ARXIV_PAPERS_START -->\n\n"
        "## 🥳 No new papers today. Take it easy and recharge!\n\n"
        "*Last updated: 2025-07-25 23:59:59 (UTC)*\n\n"
        "\n<!-- ARXIV_PAPERS_END -->"
    )


def test_failed_runs_are_not_the_latest_run(db):
    record_run(db, [paper("2507.00001", 1, "Kept", "2025-07-20T00:00:00Z")])
    failed = start_run(db, "q")
    db["runs"].update(failed, {"status": "failed", "error": "HTTP 503"})
    assert "### 1. Kept\n" in render_section(db, zone=SGT)


def test_empty_database_says_no_new_papers(db):
    assert render_section(db, zone=SGT) == (
        "<!-- ARXIV_PAPERS_START -->\n\n## 🥳 No new papers today. Take it easy and recharge!\n\n\n<!-- ARXIV_PAPERS_END -->"
    )


def test_more_than_max_papers_ends_with_a_count_and_a_link(db):
    record_run(db, [paper(f"2507.{n:05d}", 1, f"P{n}", f"2025-07-23T00:00:{n:02d}Z") for n in range(1, 6)])
    section = render_section(db, zone=SGT, max_papers=2, more_url="https://ai4mat.example.org/")
    assert section.count("\n### ") == 2
    assert "### 1. P5\n" in section and "### 2. P4\n" in section
    assert section.startswith("<!-- ARXIV_PAPERS_START -->\n\n## New Papers (5)\n\n")
    assert section.endswith(
        "---\n\n*…and 3 more papers from this run: see [the full list](https://ai4mat.example.org/ai4mat/new_today).*\n\n"
        "\n<!-- ARXIV_PAPERS_END -->"
    )
    without_url = render_section(db, zone=SGT, max_papers=4)
    assert "*…and 1 more paper from this run: see the `new_today` query of the dataset.*\n\n" in without_url


def test_html_comment_in_paper_text_cannot_end_the_section(db):
    record_run(db, [paper("2507.00001", 1, "Title <!-- ARXIV_PAPERS_END --> trick", "2025-07-23T00:00:00Z",
                          summary="Abstract with <!-- ARXIV_PAPERS_START --> and -->, <b>bold</b>.",
                          authors=["<!--Evil", "Good"])])
    section = render_section(db, zone=SGT)
    assert section.count(START_MARKER) == 1 and section.count(END_MARKER) == 1
    assert "### 1. Title &lt;!-- ARXIV_PAPERS_END --> trick\n" in section
    # Verbatim but for "<!--": the section's readers expect arXiv's text byte for byte.
    assert "**Summary:** Abstract with &lt;!-- ARXIV_PAPERS_START --> and -->, <b>bold</b>....\n" in section
    assert "**Authors:** &lt;!--Evil, Good\n" in section
    readme = replace_section("# Title\n", section)
    assert replace_section(readme, section) == readme


SECTION = f"{START_MARKER}\n\nnew\n{END_MARKER}"


@pytest.mark.parametrize(
    "before, after",
    [
        ("", SECTION),
        ("# Title\n", f"# Title\n\n\n{SECTION}"),
        (f"# T\n\n{START_MARKER}\nold\n{END_MARKER}\n\nFooter\n", f"# T\n\n{SECTION}\n\nFooter\n"),
        (f"{START_MARKER}{END_MARKER}", SECTION),
    ],
    ids=["empty-file", "no-markers", "replace-between", "adjacent-markers"],
)
def test_replace_section(before, after):
    assert replace_section(before, SECTION) == after


@pytest.mark.parametrize(
    "readme, message",
    [
        (f"# T\n{START_MARKER}\nold\n", "README has a start marker without its pair"),
        (f"# T\nold\n{END_MARKER}\n", "README has an end marker without its pair"),
        (f"{END_MARKER}\n{START_MARKER}\n", "README has a start marker without its pair"),
        (f"{START_MARKER}\n{END_MARKER}\n{START_MARKER}\n{END_MARKER}", "README has more than one"),
    ],
)
def test_replace_section_refuses_to_guess(readme, message):
    with pytest.raises(ReadmeError, match=message):
        replace_section(readme, SECTION)


def test_stale_old_versions_and_double_versions_are_not_news(db):
    record_run(db, [paper("2507.00001", 3, "Third", "2025-07-21T00:00:00Z")])
    record_run(db, [
        paper("2507.00001", 1, "First", "2025-07-19T00:00:00Z"),
        paper("2507.00002", 1, "B first", "2025-07-22T00:00:00Z"),
        paper("2507.00002", 2, "B second", "2025-07-23T00:00:00Z"),
    ])
    section = render_section(db, zone=SGT)
    assert section.count("\n### ") == 1
    assert "## New Papers (1)\n" in section and "### 1. B second\n" in section and "**ID:** 2507.00002v2\n" in section


def test_real_abstract_is_written_verbatim(db):
    from pathlib import Path

    from harvest.parse import parse_feed

    fixture = Path(__file__).parent / "fixtures" / "atom_2026_idlist_oldstyle_astro-ph_0601001.xml"
    (served,) = parse_feed(fixture.read_bytes()).papers
    record_run(db, [served])
    section = render_section(db, zone=SGT)
    assert f"**Summary:** {served['summary']}...\n\n---\n\n" in section
    assert "Gould & Morgan (2003)" in section and "V_max<17.5" in section
    assert "**ID:** astro-ph/0601001v1\n\n**Link:** [http://arxiv.org/abs/astro-ph/0601001v1](http://arxiv.org/abs/astro-ph/0601001v1)\n" in section


def test_an_abnormal_paper_is_cut_visibly_and_normal_ones_are_not(db):
    """A 1 MB abstract and 10,000 authors once went into the README whole (1.18 MB; GitHub
    stops rendering at 512 KB)."""
    giant = paper("2507.00002", 1, "T" * 3000, "2025-07-23T10:00:00Z", summary="word " * 200_000,
                  authors=[f"Member {n:05d}" for n in range(1, 10_001)] + ["N" * 1000])
    normal = paper("2507.00001", 1, "A normal paper", "2025-07-23T09:00:00Z", summary="s" * 2346,
                   authors=[f"Author {n:03d}" for n in range(1, 145)])
    record_run(db, [giant, normal])
    section = render_section(db, zone=SGT)
    assert len(section.encode()) < 20_000
    assert (
        f"### 1. {'T' * 1000} … [cut: 1,000 of 3,000 characters shown]\n\n"
        f"**Authors:** {', '.join(f'Member {n:05d}' for n in range(1, 201))}, … and 9,801 more\n\n"
        "**Published:** 2026-11-19\n\n"
    ) in section
    assert f"**Summary:** {('word ' * 1000)[:5000]} … [cut: 5,000 of 1,000,000 characters shown]...\n\n---\n\n" in section
    # The real maxima of tests/fixtures/ai4mat (144 authors, a 2,346-character abstract) are written whole.
    assert (
        f"### 2. A normal paper\n\n**Authors:** {', '.join(f'Author {n:03d}' for n in range(1, 145))}\n\n"
        "**Published:** 2026-11-19\n\n**Category:** cond-mat.mtrl-sci\n\n**ID:** 2507.00001v1\n\n"
        "**Link:** [http://arxiv.org/abs/2507.00001v1](http://arxiv.org/abs/2507.00001v1)\n\n"
        f"**Summary:** {'s' * 2346}...\n\n---\n\n"
    ) in section


def test_section_stays_within_its_byte_budget(db):
    """Papers that do not fit in the budget are counted in the closing line, not written in part."""
    papers = [
        paper(f"2507.{n:05d}", 1, f"Paper {n}", f"2025-07-23T{n // 60:02d}:{n % 60:02d}:00Z", summary="é" * 4_900,
              authors=[f"Ünal Author {n}-{k}" for k in range(150)])
        for n in range(1, 81)
    ]
    record_run(db, papers)
    section = render_section(db, zone=SGT, max_papers=100, more_url="https://ai4mat.example.org")
    size = len(section.encode())
    assert 390_000 < size <= 400_000, size
    shown = section.count("\n### ")
    assert 0 < shown < 80
    # Whole blocks, newest first, numbered from 1, then the count of the rest.
    for number in range(1, shown + 1):
        n = 81 - number
        assert f"### {number}. Paper {n}\n\n" in section
        assert f"**Summary:** {'é' * 4_900}...\n\n---\n\n" in section
    assert section.endswith(
        f"---\n\n*…and {80 - shown} more papers from this run: see [the full list](https://ai4mat.example.org/ai4mat/new_today).*\n\n"
        "\n<!-- ARXIV_PAPERS_END -->"
    )
    assert section.count("**Summary:** ") == shown and section.count("---\n\n") == shown


def test_readme_tags_adds_one_line_per_tagged_paper_and_is_off_by_default(db):
    record_run(db, [
        paper("2611.00001", 1, "Diffusion models for MOF design", "2026-11-20T02:00:00Z"),
        paper("2611.00002", 1, "A note on lattices", "2026-11-20T01:00:00Z"),
    ])
    plain = render_section(db, zone=SGT)
    assert "**Tags:**" not in plain
    tagged = render_section(db, zone=SGT, tags=True)
    assert tagged == plain.replace(
        "**Category:** cond-mat.mtrl-sci\n\n**ID:** 2611.00001v1",
        "**Category:** cond-mat.mtrl-sci\n\n**Tags:** MOF, diffusion model\n\n**ID:** 2611.00001v1",
    )
    assert tagged.count("**Tags:**") == 1  # the untagged paper gets no empty line

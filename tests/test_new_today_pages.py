"""Every paper of the day is reachable from where the README points, past Datasette's 1,000-row limit."""

from __future__ import annotations

import html
import json
import re
import urllib.parse
import urllib.request
from collections import Counter
from zoneinfo import ZoneInfo

from harvest.readme import render_section
from harvest.store import finish_run, open_db, save_papers, start_run

from .cycles import one_run_per_cycle
from .fake_arxiv import make_paper
from .site_data import serving

ARXIV_ID_CELL = re.compile(r'<td class="col-arxiv_id">(?:<a [^>]*>)?([^<]+)')
NEXT_PAGE = re.compile(r'<p class="next-page"><a href="([^"]+)">next page</a></p>')


def paper(n: int) -> dict:
    # Ten update times only, so a page ends inside a run of equal times; some old-style ids (with "/").
    arxiv_id = f"cond-mat/{n:07d}" if n % 7 == 0 else f"2611.{n:05d}"
    record = make_paper(n, arxiv_id=arxiv_id, updated=f"2026-11-2{n % 10}T12:00:00Z")
    return {**record, "abs_url": None, "pdf_url": None}


def record(db, papers: list[dict]) -> None:
    run_id = start_run(db, "q")
    with db.atomic():
        finish_run(db, run_id, save_papers(db, run_id, papers))


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=60) as response:
        assert response.status == 200
        return response.read().decode("utf-8")


def test_every_paper_of_a_large_cycle_is_reachable_from_the_readme_link(tmp_path):
    path = tmp_path / "ai4mat.db"
    db = open_db(path)
    yesterday = [paper(n) for n in range(1, 4)]
    first, second = [paper(n) for n in range(4, 804)], [paper(n) for n in range(804, 1454)]
    record(db, yesterday)
    record(db, first)
    record(db, second)
    one_run_per_cycle(db)
    # The first harvest of a topic, in two runs of one announcement cycle: 1,450 papers.
    db.execute("UPDATE runs SET cycle = (SELECT cycle FROM runs WHERE id = 3) WHERE id = 2")
    db.conn.commit()
    db.close()
    expected = {p["arxiv_id"] for p in first + second}
    assert len(expected) == 1450

    with serving(path) as (_, base, _):
        db = open_db(path, create=False, writable=False)
        section = render_section(db, zone=ZoneInfo("UTC"), more_url=base)
        db.close()
        assert "## New Papers (1450)\n" in section
        url = re.search(r"\*…and 1350 more papers from this run: see \[the full list\]\(([^)]+)\)\.\*", section).group(1)
        assert url == base + "ai4mat/new_today"

        seen: list[str] = []
        pages = 0
        while url and pages < 10:
            page = get(url)
            pages += 1
            seen += [html.unescape(cell) for cell in ARXIV_ID_CELL.findall(page)]
            link = NEXT_PAGE.search(page)
            url = urllib.parse.urljoin(url, html.unescape(link.group(1))) if link else None
        assert pages == 2
        assert [arxiv_id for arxiv_id, times in Counter(seen).items() if times > 1] == []
        assert set(seen) == expected

        # The JSON API pages the same way, with before = "updated,arxiv_id" of a page's last row.
        rows = json.loads(get(base + "ai4mat/new_today.json?_shape=array"))
        last = rows[-1]
        rest = json.loads(get(base + "ai4mat/new_today.json?_shape=array&" + urllib.parse.urlencode(
            {"before": f"{last['updated']},{last['arxiv_id']}"})))
        assert (len(rows), len(rest)) == (1000, 450)
        assert [row["arxiv_id"] for row in rows + rest] == seen

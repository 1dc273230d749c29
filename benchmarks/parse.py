#!/usr/bin/env python3
"""Cost of harvest.parse's own UTF-8 decoding and character cleaning, against feedparser alone.

`python benchmarks/parse.py`: builds a 2,000-entry page (arXiv's largest) from the entries of
the real recorded 2026 page (tests/fixtures/), then reports medians of repeated runs of
  - feedparser.parse(page) alone (the baseline, measured in the same run),
  - harvest.parse._clean_utf8(page) alone, on the clean page and with one invalid byte,
  - harvest.parse.parse_feed(page), the whole parse.
"""

from __future__ import annotations

import logging
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import feedparser  # noqa: E402

from harvest.parse import _clean_utf8, parse_feed  # noqa: E402


def page_of(entries: int) -> bytes:
    real = (ROOT / "tests" / "fixtures" / "atom_2026_all-testing_100entries.xml").read_bytes()
    head, rest = real.split(b"<entry>", 1)
    body = b"<entry>" + rest.rsplit(b"</feed>", 1)[0]
    return head + body * (entries // 100) + b"</feed>\n"


def median_seconds(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    logging.getLogger("harvest.parse").setLevel(logging.ERROR)  # the invalid byte's warning, repeated
    repeats = 5
    page = page_of(2000)
    at = page.index(b"<summary>") + len(b"<summary>") + 1
    bad = page[:at] + b"\xff" + page[at:]
    assert len(parse_feed(page).papers) == 2000
    baseline = median_seconds(lambda: feedparser.parse(page), repeats)
    clean = median_seconds(lambda: _clean_utf8(page), repeats)
    clean_bad = median_seconds(lambda: _clean_utf8(bad), repeats)
    whole = median_seconds(lambda: parse_feed(page), repeats)
    print(f"page: 2,000 entries, {len(page):,} bytes; medians of {repeats}")
    print(f"feedparser.parse alone (baseline): {baseline * 1000:8.1f} ms")
    print(f"_clean_utf8, valid page:           {clean * 1000:8.1f} ms  ({clean / baseline:.3f} of baseline)")
    print(f"_clean_utf8, one invalid byte:     {clean_bad * 1000:8.1f} ms  ({clean_bad / baseline:.3f} of baseline)")
    print(f"parse_feed, whole parse:           {whole * 1000:8.1f} ms  ({whole / baseline:.3f} of baseline)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

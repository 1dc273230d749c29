#!/usr/bin/env python3
"""What a BibTeX/RIS export costs over HTTP, against the same page as JSON and CSV.

`python benchmarks/export.py [--db /work/bench/1m/ai4mat.db] [--repeats 5]`: serves the file
with a real `ai4mat serve` (immutable: the file is only read) and reports the median time of
each URL below over HTTP, and its ratio to the same page's `.json` measured in the same run.
The papers table's `.json` counts every row and computes facets, as the `.bib`/`.ris` page
does; `_shape=array` skips both, so it is listed too.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.site_data import serving  # noqa: E402

PAGES = {
    "papers, 1,000 rows": "ai4mat/papers{ext}?_size=max",
    "papers, 1,000 rows, _nocount _nofacet": "ai4mat/papers{ext}?_size=max&_nocount=1&_nofacet=1",
    "search q=graph neural network": "ai4mat/search{ext}?q=graph+neural+network",
    "new_today": "ai4mat/new_today{ext}",
}
FORMATS = (".json", ".json?_shape=array", ".csv", ".bib", ".ris")


def timed_get(url: str) -> tuple[float, int]:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as response:
        body = response.read()
    return time.perf_counter() - start, len(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="/work/bench/1m/ai4mat.db")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with serving(Path(args.db), startup_seconds=120) as (_, base, _):
        print(f"{args.db}, median of {args.repeats} over HTTP, ratio to the same page's .json")
        print(f"{'page':40} {'format':20} {'ms':>8} {'ratio':>6} {'bytes':>10}")
        for name, template in PAGES.items():
            baseline = None
            for fmt in FORMATS:
                ext, _, extra = fmt.partition("?")
                url = base + template.format(ext=ext)
                if extra:
                    url += ("&" if "?" in url else "?") + extra
                timed_get(url)  # warm the page cache
                runs = [timed_get(url) for _ in range(args.repeats)]
                median = statistics.median(t for t, _ in runs)
                baseline = baseline or median
                print(f"{name:40} {fmt:20} {median * 1000:8.1f} {median / baseline:6.2f} {runs[0][1]:10,}")


if __name__ == "__main__":
    main()

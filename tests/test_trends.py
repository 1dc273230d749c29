"""The Trends page (/-/dashboards/trends): its charts drawn by a real headless Chromium from a real
`ai4mat serve`, with nothing loaded from any host but the site.

Three files: the harvested test dataset (tagged by the harvester's enricher), the same without
its paper_tags table (a file from before tagging), and a dataset with no runs at all (the
negative control: every chart must then count as empty).
"""

from __future__ import annotations

import datetime
import functools
import http.server
import json
import shutil
import sqlite3
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest

from harvest.store import writing

from .site_data import ROOT, build_site_db, chromium_binary, load_metadata, serving

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update",
]
CHARTS = ("papers-per-month", "categories-per-year", "tags-per-year", "harvest-days")
# aria-roledescription of the items Vega draws for data (axes, legends and titles are others).
DATA_MARKS = {"bar", "line", "point", "tick", "area", "circle"}

def trends_charts() -> dict:
    return load_metadata()["plugins"]["datasette-dashboards"]["trends"]["charts"]


class ChartMarks(HTMLParser):
    """Counts, per chart container (div#chart-<slug>), the data marks Vega drew and the texts it wrote."""

    def __init__(self):
        super().__init__()
        self.marks: dict[str, Counter] = {slug: Counter() for slug in CHARTS}
        self.texts: dict[str, list[str]] = {slug: [] for slug in CHARTS}
        self._chart: str | None = None
        self._depth = 0
        self._in_text = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if self._chart is None:
            if tag == "div" and (attrs.get("id") or "").removeprefix("chart-") in CHARTS and attrs["id"].startswith("chart-"):
                self._chart, self._depth = attrs["id"].removeprefix("chart-"), 1
            return
        if tag == "div":
            self._depth += 1
        if attrs.get("aria-roledescription") in DATA_MARKS:
            self.marks[self._chart][attrs["aria-roledescription"]] += 1
        self._in_text = tag == "text"

    def handle_endtag(self, tag):
        if self._chart is not None and tag == "div":
            self._depth -= 1
            if self._depth == 0:
                self._chart = None
        if tag == "text":
            self._in_text = False

    def handle_data(self, data):
        if self._chart is not None and self._in_text and data.strip():
            self.texts[self._chart].append(data.strip())


def chart_marks(dom: str) -> ChartMarks:
    parser = ChartMarks()
    parser.feed(dom)
    return parser


def empty_charts(dom: str) -> list[str]:
    """The charts of the page that drew no data mark: the check every rendering test relies on."""
    marks = chart_marks(dom).marks
    return [slug for slug in CHARTS if sum(marks[slug].values()) == 0]


def chart_rows(base: str, slug: str) -> list[dict]:
    """The rows a chart's query gives over HTTP, as the page fetches them (an error gives none)."""
    url = base + "ai4mat.json?" + urllib.parse.urlencode({"sql": trends_charts()[slug]["query"], "_shape": "array"})
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        assert error.code == 400, error.code
        return []


def render(binary: str, tmp_path: Path, url: str, screenshot: Path) -> tuple[str, list[str]]:
    """(DOM after the page's scripts ran, every URL Chromium requested), and a screenshot saved."""
    net_log = tmp_path / f"net-{time.monotonic_ns()}.json"
    profile = tmp_path / f"profile-{time.monotonic_ns()}"
    # The virtual time budget lets each chart fetch its rows and draw before the DOM is dumped.
    result = subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--log-net-log={net_log}",
         "--virtual-time-budget=15000", "--dump-dom", url],
        capture_output=True, text=True, timeout=90,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    log = json.loads(net_log.read_text())
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    # A request made for the page carries the page's site in its network isolation key, whatever
    # host it goes to; Chromium's own (update, time, spelling) requests carry another or none.
    requested = sorted({
        event["params"]["url"] for event in log["events"]
        if event["type"] == start_job
        and event.get("params", {}).get("network_isolation_key", "").startswith("http://127.0.0.1 ")
    })
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot.unlink(missing_ok=True)
    shot = subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=15000",
         "--window-size=1280,1300", "--hide-scrollbars", f"--screenshot={screenshot}", url],
        capture_output=True, text=True, timeout=90,
    )
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return result.stdout, requested


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """{"harvested", "untagged", "empty"}: three ai4mat.db files (each in its own folder: the name is the database's)."""
    root = tmp_path_factory.mktemp("trends")
    files = {name: root / name / "ai4mat.db" for name in ("harvested", "untagged", "empty")}
    for path in files.values():
        path.parent.mkdir()
    build_site_db(files["harvested"])
    shutil.copy(files["harvested"], files["untagged"])
    with sqlite3.connect(files["untagged"]) as conn:
        conn.execute("DELETE FROM paper_tags")  # the triggers empty tag_year_counts with it
    conn.close()
    with writing(files["empty"]):
        pass
    return files


def assert_stays_on_site(requested: list[str], base: str, page: str = "-/dashboards/trends") -> None:
    """Every request Chromium made for the page went to the site itself: no CDN, no font or tile server."""
    assert base + page in requested, requested
    off_site = [url for url in requested if not url.startswith(base)]
    assert off_site == [], f"requests off the site: {off_site}"


@pytest.mark.browser
def test_every_chart_draws_the_rows_of_its_query_from_files_of_the_site(datasets, tmp_path):
    binary = chromium_binary()
    with serving(datasets["harvested"]) as (_, base, _banner):
        dom, requested = render(binary, tmp_path, base + "-/dashboards/trends", ARTIFACTS / "trends.png")
        rows = {slug: chart_rows(base, slug) for slug in CHARTS}
        with urllib.request.urlopen(base, timeout=10) as response:
            assert '<a href="/-/dashboards/trends">Trends</a>' in response.read().decode()  # "Start here" on the home page
        for slug in CHARTS:  # each chart's own page, linked from its title
            with urllib.request.urlopen(f"{base}-/dashboards/trends/{slug}", timeout=10) as response:
                assert "View and edit SQL" in response.read().decode()
    assert empty_charts(dom) == []
    marks = chart_marks(dom).marks
    # Literal rows of the harvested dataset: 2 papers of 2026-11, 1 of 2026-10, 1 of 2001-02;
    # 2611.00002 has a second version.
    assert rows["papers-per-month"] == [
        {"month": "2001-02-01", "papers": 1, "revised": 0},
        {"month": "2026-10-01", "papers": 1, "revised": 0},
        {"month": "2026-11-01", "papers": 2, "revised": 1},
    ]
    assert marks["papers-per-month"] == {"bar": 6}  # one bar per month for papers, one for revised
    assert rows["categories-per-year"] == [
        {"year": "2001-01-01", "category": "cond-mat.mtrl-sci", "papers": 1},
        {"year": "2026-01-01", "category": "cond-mat.mtrl-sci", "papers": 2},
        {"year": "2026-01-01", "category": "cs.LG", "papers": 1},
    ]
    assert marks["categories-per-year"] == {"bar": 3}
    # The enricher's tags of the four papers (cond-mat/0102536 counts in 2001, by its id).
    assert rows["tags-per-year"] == [
        {"year": "2001-01-01", "tag": "method: diffusion model", "papers": 1},
        {"year": "2001-01-01", "tag": "task: crystal structure prediction", "papers": 1},
        {"year": "2001-01-01", "tag": "task: generative design", "papers": 1},
        {"year": "2026-01-01", "tag": "material: alloy", "papers": 1},
        {"year": "2026-01-01", "tag": "material: catalyst", "papers": 1},
        {"year": "2026-01-01", "tag": "material: perovskite", "papers": 1},
        {"year": "2026-01-01", "tag": "method: diffusion model", "papers": 1},
        {"year": "2026-01-01", "tag": "method: graph neural network", "papers": 1},
        {"year": "2026-01-01", "tag": "method: transformer", "papers": 1},
        {"year": "2026-01-01", "tag": "task: generative design", "papers": 1},
    ]
    assert marks["tags-per-year"]["point"] == 10
    # All three runs of the test dataset started today: two ok (5 papers and versions), one failed.
    assert [(r["papers"], r["ok_runs"], r["failed_runs"], r["status"]) for r in rows["harvest-days"]] == [
        (5, 2, 1, "ok after a failure"),
    ]
    assert marks["harvest-days"] == {"bar": 1, "tick": 1}
    assert chart_marks(dom).texts["tags-per-year"].count("No tags yet") == 0
    assert_stays_on_site(requested, base)


@pytest.mark.browser
def test_without_paper_tags_the_tag_chart_says_so_and_the_others_draw(datasets, tmp_path):
    binary = chromium_binary()
    with serving(datasets["untagged"]) as (_, base, _banner):
        dom, requested = render(binary, tmp_path, base + "-/dashboards/trends", ARTIFACTS / "trends-no-tags.png")
    assert empty_charts(dom) == ["tags-per-year"]
    assert "No tags yet" in chart_marks(dom).texts["tags-per-year"]
    assert_stays_on_site(requested, base)


@pytest.mark.browser
def test_negative_control_an_empty_dataset_counts_every_chart_empty(datasets, tmp_path):
    # The check the tests above rely on must see an empty chart: here every query gives no row.
    binary = chromium_binary()
    with serving(datasets["empty"]) as (_, base, _banner):
        dom, requested = render(binary, tmp_path, base + "-/dashboards/trends", ARTIFACTS / "trends-empty.png")
        assert {slug: chart_rows(base, slug) for slug in CHARTS} == {slug: [] for slug in CHARTS}
    assert empty_charts(dom) == list(CHARTS)
    texts = chart_marks(dom).texts
    assert [("No papers yet" in texts["papers-per-month"]), ("No papers yet" in texts["categories-per-year"]),
            ("No tags yet" in texts["tags-per-year"]), ("No harvests yet" in texts["harvest-days"])] == [True] * 4
    assert_stays_on_site(requested, base)


@pytest.mark.browser
def test_negative_control_an_off_site_script_is_caught(tmp_path):
    # The same net-log check over a page that asks a CDN for its script must fail.
    binary = chromium_binary()
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html").write_text(
        '<html><body><p>chart</p><script src="http://cdn.example.invalid/vega.min.js"></script></body></html>'
    )
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "site"))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        base = f"http://127.0.0.1:{server.server_address[1]}/"
        try:
            _dom, requested = render(binary, tmp_path, base + "index.html", tmp_path / "cdn.png")
        finally:
            server.shutdown()
    assert "http://cdn.example.invalid/vega.min.js" in requested
    with pytest.raises(AssertionError, match="requests off the site: .'http://cdn.example.invalid/vega.min.js'."):
        assert_stays_on_site(requested, base, "index.html")


# ---------------------------------------------------------------- the charts' SQL, in process


async def query_rows(path: Path, sql: str) -> list[dict]:
    from datasette.app import Datasette

    from .site_data import PLUGINS_DIR

    ds = Datasette([], immutables=[str(path)], metadata=load_metadata(), plugins_dir=str(PLUGINS_DIR))
    response = await ds.client.get("/ai4mat.json?" + urllib.parse.urlencode({"sql": sql, "_shape": "array"}))
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.asyncio
async def test_harvest_days_marks_failed_days_and_days_without_a_run(datasets, tmp_path):
    # Move run 1 (ok) three days back and run 3 (failed) one day back: the day between had no run.
    path = tmp_path / "ai4mat.db"
    shutil.copy(datasets["harvested"], path)
    now = datetime.datetime.now(datetime.timezone.utc)
    day = lambda days_ago: (now - datetime.timedelta(days=days_ago)).strftime("%Y-%m-%d")
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE runs SET started_at = ? WHERE id = 1", [day(3) + "T22:00:00Z"])
        conn.execute("UPDATE runs SET started_at = ? WHERE id = 3", [day(1) + "T22:00:00Z"])
        conn.execute("UPDATE runs SET started_at = ? WHERE id = 2", [day(0) + "T00:00:01Z"])
    conn.close()
    rows = await query_rows(path, trends_charts()["harvest-days"]["query"])
    assert rows == [
        {"day": day(3), "papers": 3, "ok_runs": 1, "failed_runs": 0, "status": "ok"},
        {"day": day(2), "papers": 0, "ok_runs": 0, "failed_runs": 0, "status": "no run"},
        {"day": day(1), "papers": 0, "ok_runs": 0, "failed_runs": 1, "status": "failed"},
        {"day": day(0), "papers": 2, "ok_runs": 1, "failed_runs": 0, "status": "ok"},
    ]


@pytest.mark.asyncio
async def test_category_chart_folds_all_but_the_eight_largest_into_other(datasets, tmp_path):
    path = tmp_path / "ai4mat.db"
    shutil.copy(datasets["harvested"], path)
    # Ten more primary categories, category k with k papers in 2025. The 8 largest overall are
    # x10..x04 and, of the two with 3 papers, cond-mat.mtrl-sci (ties go by name): x01..x03 are other.
    with sqlite3.connect(path) as conn:
        for k in range(1, 11):
            for n in range(k):
                conn.execute(
                    "INSERT INTO papers (arxiv_id, version, title, summary, primary_category, published, first_run, last_run)"
                    " VALUES (?, 1, 't', 's', ?, '2025-03-01T00:00:00Z', 1, 1)",
                    [f"2503.{k:02d}{n:03d}", f"physics.x{k:02d}"],
                )
    conn.close()
    rows = await query_rows(path, trends_charts()["categories-per-year"]["query"])
    assert [(r["year"], r["category"], r["papers"]) for r in rows if r["year"] == "2025-01-01"] == [
        ("2025-01-01", "other", 1 + 2 + 3),
        *[("2025-01-01", f"physics.x{k:02d}", k) for k in range(4, 11)],
    ]
    assert ("2026-01-01", "cond-mat.mtrl-sci", 2) in [(r["year"], r["category"], r["papers"]) for r in rows]

"""Time the Trends page as a browser gets it: the page's HTML and each chart's rows over HTTP.

Serves DB (a file named ai4mat.db, immutable) with the site's metadata, plugins and settings, then
requests /-/dashboards/trends and, for every chart, the very URL datasette-dashboards' script
fetches (`/ai4mat.json?sql=<the chart's query>&_shape=objects`). The baseline, measured in the
same run, is `select 1` through the same JSON endpoint: what a chart costs beyond Datasette itself.

    python benchmarks/trends.py --db /work/bench/charts/ai4mat.db --repeats 5
    python benchmarks/trends.py --db ... --metadata old-metadata.yml    # another version's charts
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harvest.serve import datasette_argv  # noqa: E402


def get(url: str) -> tuple[int, bytes, float]:
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=120) as response:
            body, status = response.read(), response.status
    except urllib.error.HTTPError as error:
        body, status = error.read(), error.code
    return status, body, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True, help="an ai4mat.db to serve (never written)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--port", type=int, default=8790)
    parser.add_argument("--metadata", type=Path, default=ROOT / "metadata.yml",
                        help="whose chart queries to time (e.g. an older metadata.yml, for a before/after)")
    args = parser.parse_args()
    if args.db.name != "ai4mat.db":
        sys.exit("trends: the file must be named ai4mat.db (the charts ask for the database ai4mat)")

    charts = yaml.safe_load(args.metadata.read_text())["plugins"]["datasette-dashboards"]["trends"]["charts"]
    base = f"http://127.0.0.1:{args.port}/"
    urls = {"baseline: select 1": base + "ai4mat.json?" + urllib.parse.urlencode({"sql": "select 1", "_shape": "objects"})}
    urls["page /-/dashboards/trends"] = base + "-/dashboards/trends"
    for slug, chart in charts.items():
        # dashboards.js: `${absolute_url}${chart.db}.json?sql=${query}&${query_string}&_shape=objects`
        urls[slug] = f"{base}ai4mat.json?sql={urllib.parse.quote(chart['query'])}&&_shape=objects"

    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(datasette_argv(args.db, metadata_path=args.metadata, plugins_dir=ROOT / "plugins", port=args.port),
                                  cwd=ROOT, stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if get(base + "-/versions.json")[0] == 200:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    sys.exit("trends: datasette did not start")
                time.sleep(0.2)
            results = {}
            for name, url in urls.items():
                get(url)  # warm: the first request of each also pays for reading its pages from disk
                times, status, body = [], 0, b""
                for _ in range(args.repeats):
                    status, body, seconds = get(url)
                    times.append(seconds * 1000)
                entry = {"status": status, "p50_ms": round(statistics.median(times), 1), "max_ms": round(max(times), 1)}
                if name != "page /-/dashboards/trends":
                    data = json.loads(body)
                    entry["rows"] = len(data.get("rows") or [])
                    entry["truncated"] = data.get("truncated")
                    if status != 200:
                        entry["error"] = data.get("error")
                results[name] = entry
        finally:
            server.terminate()
            server.wait(timeout=30)
    baseline = results["baseline: select 1"]["p50_ms"]
    print(f"| request | status | rows | p50 ms | max ms | p50 / baseline |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, entry in results.items():
        print(f"| {name} | {entry['status']} | {entry.get('rows', '')} | {entry['p50_ms']} | {entry['max_ms']} | "
              f"{entry['p50_ms'] / baseline:.1f} |" + (f" {entry['error']}" if entry.get("error") else ""))


if __name__ == "__main__":
    main()

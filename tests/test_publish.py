"""Publishing: the generated Fly deployment, the GitHub workflows, and the README's generated parts."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import datasette
import yaml

from harvest.readme import END_MARKER, START_MARKER

from .site_data import PLUGINS_DIR, ROOT, build_site_db, load_metadata

BIN = Path(sys.executable).parent
PUBLISH = ROOT / "scripts" / "publish.sh"


def run(args, cwd, **env):
    environment = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "PYTHON": sys.executable, **env}
    return subprocess.run(args, cwd=cwd, env=environment, capture_output=True, text=True, timeout=120)


def test_publish_generates_a_deployment_of_the_same_site(tmp_path):
    db = tmp_path / "ai4mat.db"
    build_site_db(db)
    out = tmp_path / "fly"
    result = run(["bash", str(PUBLISH), "--generate-dir", str(out)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr

    pins = [d for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"] if d.startswith("datasette-")]
    assert pins == ["datasette-atom==0.9", "datasette-search-all==1.1.4", "datasette-dashboards==0.8.0"]
    dockerfile = (out / "Dockerfile").read_text().splitlines()
    plugin_pins = [f"{name}=={importlib.metadata.version(name)}" for name in ("numpy", "wordllama", "safetensors", "tokenizers", "snowballstemmer", "PyStemmer")]
    assert f"RUN pip install -U datasette datasette=={datasette.__version__} {' '.join(plugin_pins + pins)}" in dockerfile
    cmd = next(line for line in dockerfile if line.startswith("CMD "))
    assert cmd == (
        "CMD datasette serve --host 0.0.0.0 -i ai4mat.db --cors --inspect-file inspect-data.json "
        "--metadata metadata.json --template-dir templates/ --plugins-dir plugins/ --setting sql_time_limit_ms 3000 "
        "--setting max_returned_rows 1000 --setting default_cache_ttl 3600 --setting suggest_facets off --setting force_https_urls on --port $PORT"
    )
    assert 'app = "ai4mat-arxiv-daily"' in (out / "fly.toml").read_text()
    assert (out / "ai4mat.db").read_bytes() == db.read_bytes()
    assert (out / "plugins" / "ai4mat_search.py").read_bytes() == (PLUGINS_DIR / "ai4mat_search.py").read_bytes()
    # The image does not install ai4mat: the lookup rules the plugins share with it go beside them.
    assert (out / "plugins" / "ai4mat_lookup_rules.py").read_bytes() == (ROOT / "harvest" / "lookups.py").read_bytes()
    # And search's MiniLM, with the model's files, checked against the official model's by hash.
    assert (out / "plugins" / "ai4mat_minilm.py").read_bytes() == (ROOT / "harvest" / "minilm.py").read_bytes()
    assert sorted(path.name for path in (out / "plugins" / "ai4mat_minilm_model").iterdir()) == ["model.safetensors", "tokenizer.json"]
    row_template = "row-ai4mat-papers.html"
    assert (out / "templates" / row_template).read_bytes() == (ROOT / "templates" / row_template).read_bytes()
    # The metadata as `ai4mat serve` serves it: rendered for config.json (harvest/site_config.py).
    assert json.loads((out / "metadata.json").read_text()) == load_metadata()
    assert "{{" not in (out / "metadata.json").read_text()

    # Run the image's commands here: inspect, then serve with a request instead of a port.
    inspect = next(line for line in dockerfile if line.startswith("RUN datasette inspect"))
    assert run(shlex.split(inspect[len("RUN "):]), cwd=out).returncode == 0
    serve = shlex.split(cmd[len("CMD "):])
    serve = [arg for arg in serve[: serve.index("--port")] if arg not in ("--host", "0.0.0.0")]
    result = run([*serve, "--get", "/ai4mat/search.json?q=perovskite&_shape=array"], cwd=out)
    assert result.returncode == 0, result.stderr
    assert [row["arxiv_id"] for row in json.loads(result.stdout)] == ["2611.00002"]
    # Behind Fly's TLS proxy the Trends page must fetch its charts' rows over https://.
    result = run([*serve, "--get", "/-/dashboards/trends"], cwd=out)
    assert result.returncode == 0, result.stderr
    assert "'https://localhost/')" in result.stdout and "'http://localhost/')" not in result.stdout


def test_publish_refuses_a_missing_database(tmp_path):
    result = run(["bash", str(PUBLISH), "--generate-dir", str(tmp_path / "fly")], cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == "publish: ai4mat.db not found (run scripts/daily.sh first)\n"
    assert not (tmp_path / "fly").exists()


# ---------------------------------------------------------------- GitHub workflows


def load_workflow(name: str) -> dict:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())
    workflow["on"] = workflow.pop(True)  # YAML 1.1 reads the key `on` as true
    return workflow


def test_workflows_match_the_github_schema():
    result = run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows",
         ".github/workflows/daily.yml", ".github/workflows/test.yml"],
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "ok -- validation done"


def test_daily_workflow_runs_on_schedule_alone_and_one_at_a_time():
    workflow = load_workflow("daily.yml")
    # Starting an empty dataset is a choice made by hand, never what a scheduled run does.
    assert workflow["on"]["schedule"] == [{"cron": "0 22 * * *"}]
    assert workflow["on"]["workflow_dispatch"]["inputs"]["start_empty"] | {"description": ""} == {
        "description": "", "type": "boolean", "default": False,
    }
    assert workflow["concurrency"] == {"group": "daily", "cancel-in-progress": False}
    assert workflow["permissions"] == {"contents": "read"}
    job = workflow["jobs"]["daily"]
    assert job["permissions"] == {"contents": "write"}
    steps = job["steps"]
    setup = next(step for step in steps if step.get("uses", "").startswith("actions/setup-python@"))
    assert setup["with"]["cache"] == "pip"
    runs = [step.get("run", "") for step in steps]
    assert "scripts/daily.sh" in runs
    assert "scripts/release.sh" in runs  # atomic release: tested in test_daily.py
    assert any("git diff --quiet -- README.md" in text and "-- README.md" in text for text in runs)
    assert runs[-2] == "scripts/publish.sh"
    # The deploy token reaches the publish step only.
    assert [i for i, step in enumerate(steps) if "FLY_API_TOKEN" in step.get("env", {})] == [len(steps) - 2]
    # A failed harvest is published, then turns the job red.
    daily_step = next(step for step in steps if step.get("run") == "scripts/daily.sh")
    assert daily_step["env"]["AI4MAT_START_EMPTY"] == "${{ inputs.start_empty && '1' || '' }}"
    assert steps[-1]["if"] == f"steps.{daily_step['id']}.outputs.harvest_failed == 'true'"
    assert steps[-1]["run"].rstrip().endswith("exit 1")
    assert "FLY_API_TOKEN" not in job["env"]


def test_test_workflow_runs_make_test_on_push_and_pull_request():
    workflow = load_workflow("test.yml")
    assert workflow["on"] == {"push": None, "pull_request": None}
    assert workflow["permissions"] == {"contents": "read"}
    assert workflow["jobs"]["test"]["steps"][-1]["run"] == ".ci/run"
    assert (ROOT / ".ci" / "run").read_text().rstrip().endswith("make test")


# ---------------------------------------------------------------- README


def test_readme_generated_parts_are_up_to_date():
    result = run([str(BIN / "cog"), "--check", "README.md"], cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_readme_lists_every_canned_query_and_keeps_the_paper_markers_once():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in load_metadata()["databases"]["ai4mat"]["queries"]:
        assert re.search(rf"^- `{name}`[ :]", readme, re.M), name
    # The README writer cuts at the markers: they must appear once, after this section.
    assert readme.count(START_MARKER) == readme.count(END_MARKER) == 1
    assert readme.index("## The public dataset") < readme.index(START_MARKER)
    assert "/ai4mat/papers.json?_search=diffusion&_shape=array" in readme
    assert re.search(r"/ai4mat/papers/cond-mat~2F0102536", readme)

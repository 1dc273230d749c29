"""ai4mat as a package: the wheel ships the site, and an installed `ai4mat` works in any folder.

The slow part (marked `slow`; about a minute on a busy machine, most of it pip installing the
dependencies, from its cache where it can) is the module fixture `installed`: it builds a wheel
from a copy of this checkout and installs it into a fresh virtual environment in a temporary
folder, outside the checkout. Every test that takes `installed` runs the installed command in an
empty folder, never the checkout. `pytest -m "not slow"` leaves them out.
The in-process tests at the end cover `ai4mat init` and the missing-config line from the checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from harvest.cli import cli
from harvest.site_files import site_files

from .fake_arxiv import FakeArxiv, make_paper
from .site_data import build_site_db, free_port, serving, stop

ROOT = Path(__file__).resolve().parent.parent
# What pyproject.toml maps into harvest/site/: globs, so files added later are expected too.
SITE_GLOBS = ("metadata.yml", "config.json", "plugins/*.py", "plugins/*.json", "templates/*.html")
# Left out of the copy the wheel is built from: nothing of these goes into a wheel.
NOT_SOURCES = shutil.ignore_patterns(
    ".venv", ".git", "build", "*.egg-info", "__pycache__", ".pytest_cache", "test-artifacts", "work", "*.db*",
)

PAPERS = [
    make_paper(1, title="Diffusion models for LiFePO4 cathodes",
               summary="We generate LiFePO4 variants; code at https://github.com/ai4mat/lfp-diffusion."),
    make_paper(2, title="Graph networks screen perovskite catalysts", authors=["Bo Chen"]),
]


def run(args: list, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `args` in `cwd` with nothing of this checkout on the import path."""
    env = {name: value for name, value in os.environ.items() if name not in ("PYTHONPATH", "VIRTUAL_ENV", "ARXIV_API_URL")}
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a copy of this checkout (a build writes build/ and *.egg-info beside its sources)."""
    source = tmp_path_factory.mktemp("source") / "ai4mat"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCES)
    out = tmp_path_factory.mktemp("wheel")
    result = run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", out, source], cwd=out)
    assert result.returncode == 0, result.stderr
    [built] = out.glob("ai4mat-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """The bin/ folder of a fresh virtual environment, outside the checkout, with the wheel installed. Slow."""
    venv = tmp_path_factory.mktemp("venv")
    result = run([sys.executable, "-m", "venv", venv], cwd=venv)
    assert result.returncode == 0, result.stderr
    # --no-compile: byte-compiling numpy, datasette and the rest would be a third of the time.
    result = run([venv / "bin" / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
                  wheel], cwd=venv, timeout=600)
    assert result.returncode == 0, result.stderr
    return venv / "bin"


def site_package_files() -> list[str]:
    """The repository's site files, as the wheel must hold them under harvest/site/."""
    return sorted(f"harvest/site/{path.relative_to(ROOT)}" for glob in SITE_GLOBS for path in ROOT.glob(glob))


def test_the_wheel_holds_the_site_the_vocabulary_and_every_module(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    modules = sorted(str(path.relative_to(ROOT)) for path in (ROOT / "harvest").rglob("*.py"))
    assert sorted(name for name in names if name.startswith("harvest/site/")) == site_package_files()
    assert sorted(name for name in names if name.endswith(".py") and not name.startswith("harvest/site/")) == modules
    assert "harvest/data/vocabulary.json" in names
    assert "harvest/site/plugins/ai4mat_synonyms.json" in names
    assert "harvest/site/templates/row-ai4mat-papers.html" in names
    for name in site_package_files():
        assert zipfile.ZipFile(wheel).read(name) == (ROOT / name.removeprefix("harvest/site/")).read_bytes(), name


@pytest.mark.slow
def test_installed_ai4mat_uses_the_site_inside_the_package(installed, tmp_path):
    result = run([installed / "python", "-c", "from harvest.site_files import site_files; print(site_files().folder)"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    site_packages = Path(run([installed / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             cwd=tmp_path).stdout.strip())
    assert result.stdout == f"{site_packages / 'harvest' / 'site'}\n"


@pytest.mark.slow
def test_installed_harvest_without_a_config_says_how_to_make_one(installed, tmp_path):
    result = run([installed / "ai4mat", "harvest"], cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (
        1, "", "Error: config.json: config file not found (`ai4mat init` writes the default one)\n",
    )
    assert list(tmp_path.iterdir()) == []


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.mark.slow
def test_installed_ai4mat_inits_harvests_and_serves_in_an_empty_folder(installed, tmp_path):
    ai4mat = installed / "ai4mat"
    result = run([ai4mat, "init"], cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (
        0, 'init: wrote config.json; edit its "query" for your topic, then run `ai4mat harvest`\n', "",
    )
    assert (tmp_path / "config.json").read_bytes() == (ROOT / "config.json").read_bytes()

    with FakeArxiv() as fake:
        fake.papers = PAPERS
        result = run([ai4mat, "harvest", "--api-url", fake.url, "--delay", "0"], cwd=tmp_path)
        assert (result.returncode, result.stdout) == (0, "harvest: 2 new, 0 updated, 0 unchanged (1 request)\n"), result.stderr
        assert [request.params["search_query"] for request in fake.requests] == [json.loads((ROOT / "config.json").read_text())["query"]]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["ai4mat.db", "config.json"]

    port = free_port()
    base = f"http://127.0.0.1:{port}/"
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        env = {name: value for name, value in os.environ.items() if name not in ("PYTHONPATH", "VIRTUAL_ENV")}
        process = subprocess.Popen([str(ai4mat), "serve", "--port", str(port)], cwd=tmp_path, stdout=out, stderr=err,
                                   text=True, env=env)
        try:
            deadline = time.monotonic() + 60
            while fetch_or_none(base + "-/versions.json") != 200:
                if process.poll() is not None or time.monotonic() > deadline:
                    err.seek(0)
                    raise AssertionError(f"ai4mat serve did not start: {err.read()}")
                time.sleep(0.2)
            out.seek(0)
            assert out.readline() == (
                f"Serving ai4mat.db at {base} live (a harvest may write it while it is served; Ctrl-C to stop)\n"
            )

            status, body = fetch(base)
            assert status == 200
            assert "<h1>ArXiv Daily – AI4MAT</h1>" in body.decode()
            assert '<a href="/ai4mat/new_today">New today</a>' in body.decode()

            status, body = fetch(base + "ai4mat/new_today.json?_shape=array")
            assert status == 200
            assert [(row["status"], row["arxiv_id"], row["version"], row["title"]) for row in json.loads(body)] == [
                ("new", "2611.00002", 1, "Graph networks screen perovskite catalysts"),
                ("new", "2611.00001", 1, "Diffusion models for LiFePO4 cathodes"),
            ]

            # The paper's page comes from templates/row-ai4mat-papers.html, fed by the enrich plugin.
            status, body = fetch(base + "ai4mat/papers/2611~2E00001")
            assert status == 200
            html = body.decode()
            assert '<section class="paper-enrichment">\n  <h2>What this paper is about</h2>' in html
            assert ('<span class="link-kind">code</span>: <a href="https://github.com/ai4mat/lfp-diffusion" rel="nofollow">'
                    "https://github.com/ai4mat/lfp-diffusion</a>") in html

            # Every plugin of the site is loaded, from the package.
            status, body = fetch(base + "-/plugins.json")
            assert status == 200
            loaded = {plugin["name"] for plugin in json.loads(body)}
            assert {f"{path.name}" for path in (ROOT / "plugins").glob("*.py")} <= loaded
        finally:
            stop(process)


def fetch_or_none(url: str) -> int | None:
    try:
        return fetch(url)[0]
    except OSError:
        return None


# ---------------------------------------------------------------- in process, from the checkout


def invoke(*args, cwd: Path):
    previous = Path.cwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(cli, [str(a) for a in args])
    finally:
        os.chdir(previous)


def test_from_a_checkout_the_site_is_the_repository_s():
    assert site_files().folder == ROOT
    assert (site_files().metadata, site_files().plugins, site_files().templates) == (
        ROOT / "metadata.yml", ROOT / "plugins", ROOT / "templates",
    )


def test_init_writes_the_default_config_and_refuses_to_overwrite_it(tmp_path):
    result = invoke("init", cwd=tmp_path)
    assert (result.exit_code, result.output) == (
        0, 'init: wrote config.json; edit its "query" for your topic, then run `ai4mat harvest`\n',
    )
    assert (tmp_path / "config.json").read_bytes() == (ROOT / "config.json").read_bytes()

    (tmp_path / "config.json").write_text('{"query": "cat:cs.LG"}')
    result = invoke("init", cwd=tmp_path)
    assert (result.exit_code, result.output) == (1, "Error: init: config.json already exists (pass --force to overwrite it)\n")
    assert (tmp_path / "config.json").read_text() == '{"query": "cat:cs.LG"}'

    result = invoke("init", "--force", cwd=tmp_path)
    assert (result.exit_code, result.output) == (
        0, 'init: wrote config.json; edit its "query" for your topic, then run `ai4mat harvest`\n',
    )
    assert (tmp_path / "config.json").read_bytes() == (ROOT / "config.json").read_bytes()


def test_init_writes_where_config_points_and_says_when_it_cannot(tmp_path):
    target = tmp_path / "topic.json"
    result = invoke("init", "--config", target, cwd=tmp_path)
    assert (result.exit_code, result.output) == (
        0, f'init: wrote {target}; edit its "query" for your topic, then run `ai4mat harvest`\n',
    )
    missing = tmp_path / "no-such-folder" / "config.json"
    result = invoke("init", "--config", missing, cwd=tmp_path)
    assert (result.exit_code, result.output) == (1, f"Error: init: cannot write {missing} (No such file or directory)\n")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["topic.json"]


@pytest.mark.parametrize("command", ["harvest", "backfill", "enrich", "readme"])
def test_a_missing_default_config_says_how_to_create_one(command, tmp_path):
    result = invoke(command, cwd=tmp_path)
    assert (result.exit_code, result.output) == (
        1, "Error: config.json: config file not found (`ai4mat init` writes the default one)\n",
    )
    assert list(tmp_path.iterdir()) == []


def test_a_missing_named_config_says_how_to_create_it(tmp_path):
    result = invoke("harvest", "--config", "topic.json", cwd=tmp_path)
    assert (result.exit_code, result.output) == (
        1, "Error: topic.json: config file not found (`ai4mat init --config topic.json` writes the default one)\n",
    )
    assert list(tmp_path.iterdir()) == []


def test_serve_takes_another_metadata_and_keeps_the_site_s_plugins_and_templates(tmp_path):
    db = tmp_path / "ai4mat.db"
    build_site_db(db)
    metadata = tmp_path / "elsewhere" / "metadata.yml"
    metadata.parent.mkdir()
    site = yaml.safe_load((ROOT / "metadata.yml").read_text())
    metadata.write_text(yaml.safe_dump({**site, "title": "My topic"}, allow_unicode=True))
    with serving(db, "--metadata", str(metadata)) as (_, base, _banner):
        status, body = fetch(base)
        assert status == 200 and "<h1>My topic</h1>" in body.decode()
        status, body = fetch(base + "ai4mat/papers/2611~2E00001")
        assert status == 200 and '<section class="paper-enrichment">' in body.decode()


def test_serve_refuses_a_template_dir_that_does_not_exist(tmp_path):
    db = tmp_path / "ai4mat.db"
    build_site_db(db)
    result = invoke("serve", "--db", db, "--template-dir", tmp_path / "none", cwd=tmp_path)
    assert (result.exit_code, result.output.splitlines()[-1]) == (
        2, f"Error: Invalid value for '--template-dir': Directory '{tmp_path / 'none'}' does not exist.",
    )

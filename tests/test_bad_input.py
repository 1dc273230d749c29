"""Bad local input: every refused `--db`, read-only files and folders, a full disk, bad config.json,
and README files `ai4mat readme` must not guess about.

Each case: exit 1, one line naming the file and what to do, no traceback, the file untouched
(bytes, size and mtime compared) and no request to the API. Read-only and full-disk cases are
made real even though tests run as root (root ignores file modes): an unprivileged user via
setpriv, `chattr +i`, a read-only bind mount, a tiny tmpfs. A mechanism this machine lacks is
skipped with the reason.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from harvest.cli import cli
from harvest.store import SCHEMA_VERSION

from .dumps import directory_listing, dump, file_state, integrity, runs
from .fake_arxiv import make_paper

REPO = Path(__file__).resolve().parent.parent
NOBODY = 65534


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def harvest(fake, db_path, config_path):
    return invoke("harvest", "--db", db_path, "--config", config_path, "--api-url", fake.url, "--delay", "0")


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"query": "q", "delay_seconds": 0, "page_size": 100}))
    return path


@pytest.fixture
def harvested(fake_arxiv, tmp_path, config_file, sleeps):
    """A real dataset of 20 papers in its own folder."""
    folder = tmp_path / "data"
    folder.mkdir()
    db_path = folder / "ai4mat.db"
    fake_arxiv.papers = [make_paper(n) for n in range(1, 21)]
    assert harvest(fake_arxiv, db_path, config_file).exit_code == 0
    fake_arxiv.requests.clear()
    return db_path


def assert_refused(result, message, fake, *paths):
    assert (result.exit_code, result.output) == (1, f"Error: {message}\n")
    assert fake.requests == []


# ------------------------------------------------------------------ the --db file itself


def open_handles(path: Path) -> list[str]:
    """This process's descriptors still open on `path` (a refused file must not be held)."""
    fds = Path("/proc/self/fd")
    if not fds.is_dir():
        return []
    names = []
    for fd in fds.iterdir():
        try:
            names.append(os.readlink(fd))
        except OSError:
            pass
    return [name for name in names if name == str(path)]


def sqlite_file(path: Path, *statements: str) -> Path:
    conn = sqlite3.connect(str(path))
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()
    return path


BAD_DATABASES = {
    "text": (lambda p: p.write_text("arxiv_id,title\n2611.00001,Not a database\n"), "{p}: not an SQLite database; refusing to touch it"),
    "random-bytes": (lambda p: p.write_bytes(bytes(range(256)) * 40), "{p}: not an SQLite database; refusing to touch it"),
    "gzipped-db": (lambda p: p.write_bytes(b"\x1f\x8b\x08\x00" + b"\x00" * 600), "{p}: not an SQLite database; refusing to touch it"),
    "header-only": (lambda p: p.write_bytes(b"SQLite format 3\x00" + b"\x10\x00"), "{p}: truncated SQLite file (18 bytes); restore it from a release"),
    "newer-schema": (
        lambda p: sqlite_file(p, "CREATE TABLE runs (id INTEGER PRIMARY KEY)", f"PRAGMA user_version = {SCHEMA_VERSION + 1}"),
        f"{{p}}: written by a newer ai4mat (schema {SCHEMA_VERSION + 1}, this is {SCHEMA_VERSION}); "
        "upgrade ai4mat (pip install -U ai4mat) to use it",
    ),
    "foreign-sqlite": (
        lambda p: sqlite_file(p, "CREATE TABLE moz_places (id INTEGER PRIMARY KEY, url TEXT)", "INSERT INTO moz_places (url) VALUES ('https://arxiv.org')"),
        "{p}: not an ai4mat database (it holds other tables); refusing to touch it",
    ),
}


@pytest.mark.parametrize("kind", BAD_DATABASES)
@pytest.mark.parametrize("command", ["harvest", "backfill", "readme"])
def test_bad_database_file_is_refused_and_untouched(kind, command, fake_arxiv, tmp_path, config_file):
    make, message = BAD_DATABASES[kind]
    db_path = tmp_path / "ai4mat.db"
    make(db_path)
    before, listing = file_state(db_path), directory_listing(tmp_path)
    if command == "harvest":
        result = harvest(fake_arxiv, db_path, config_file)
        message = "harvest failed: " + message
    elif command == "backfill":
        result = invoke("backfill", "--db", db_path, "--config", config_file, "--api-url", fake_arxiv.url,
                        "--delay", "0", "--since", "2026-01-01", "--until", "2026-01-31")
        message = "backfill failed: " + message
    else:
        result = invoke("readme", "--db", db_path, "--readme", tmp_path / "README.md", "--config", config_file)
    assert_refused(result, message.format(p=db_path), fake_arxiv)
    assert (file_state(db_path), directory_listing(tmp_path)) == (before, listing)
    assert open_handles(db_path) == []


@pytest.mark.parametrize("keep", [0.5, 0.9, 4096])
def test_truncated_dataset_is_refused_and_untouched(keep, harvested, fake_arxiv, config_file):
    data = harvested.read_bytes()
    size = keep if isinstance(keep, int) else int(len(data) * keep) // 4096 * 4096
    harvested.write_bytes(data[:size])
    before = file_state(harvested)
    result = harvest(fake_arxiv, harvested, config_file)
    assert_refused(
        result, f"harvest failed: {harvested}: truncated SQLite file ({size} of {len(data)} bytes); restore it from a release", fake_arxiv
    )
    assert file_state(harvested) == before


@pytest.mark.parametrize("command", ["harvest", "readme"])
@pytest.mark.parametrize("special", ["fifo", "/dev/null", "/dev/zero"])
def test_pipe_or_device_given_as_database(special, command, fake_arxiv, tmp_path, config_file):
    """A named pipe hung the run for good (opening it waits for a writer); devices gave 'disk I/O error'."""
    db_path = Path(special)
    if special == "fifo":
        db_path = tmp_path / "ai4mat.db"
        os.mkfifo(db_path)
    args = ["--db", db_path, "--config", config_file]
    if command == "harvest":
        result = harvest(fake_arxiv, db_path, config_file)
        prefix = "harvest failed: "
    else:
        result = invoke("readme", *args, "--readme", tmp_path / "README.md")
        prefix = ""
    assert_refused(result, f"{prefix}{db_path}: not a regular file (a pipe or device); refusing to touch it", fake_arxiv)
    assert not (tmp_path / "README.md").exists()


def test_directory_given_as_database(fake_arxiv, tmp_path, config_file):
    (tmp_path / "ai4mat.db").mkdir()
    result = harvest(fake_arxiv, tmp_path / "ai4mat.db", config_file)
    assert (result.exit_code, result.output.splitlines()[-1]) == (2, f"Error: Invalid value for '--db': File '{tmp_path / 'ai4mat.db'}' is a directory.")
    assert fake_arxiv.requests == []


def test_missing_folder_for_a_new_database(fake_arxiv, tmp_path, config_file):
    db_path = tmp_path / "no" / "such" / "ai4mat.db"
    result = harvest(fake_arxiv, db_path, config_file)
    assert_refused(result, f"harvest failed: {db_path}: cannot create the database, directory {db_path.parent} does not exist", fake_arxiv)
    assert not (tmp_path / "no").exists()


def test_empty_file_is_a_new_dataset_for_harvest_but_not_for_readme(fake_arxiv, tmp_path, config_file, sleeps):
    """An empty file is what a first run killed before its first write leaves: harvest fills it."""
    db_path = tmp_path / "ai4mat.db"
    db_path.touch()
    result = invoke("readme", "--db", db_path, "--readme", tmp_path / "README.md", "--config", config_file)
    assert (result.exit_code, result.output) == (
        1, f"Error: {db_path}: database file is empty (run `ai4mat harvest --db {db_path}` first)\n"
    )
    assert db_path.stat().st_size == 0 and not (tmp_path / "README.md").exists()
    fake_arxiv.papers = [make_paper(1)]
    assert harvest(fake_arxiv, db_path, config_file).output == "harvest: 1 new, 0 updated, 0 unchanged (1 request)\n"


def test_readme_without_a_database_creates_nothing(tmp_path, config_file):
    db_path = tmp_path / "ai4mat.db"
    result = invoke("readme", "--db", db_path, "--readme", tmp_path / "README.md", "--config", config_file)
    assert (result.exit_code, result.output) == (
        1, f"Error: {db_path}: database not found (run `ai4mat harvest --db {db_path}` first)\n"
    )
    assert directory_listing(tmp_path) == ["config.json"]


# ------------------------------------------------------------------ read-only file and folder


@contextmanager
def immutable(path: Path):
    """`chattr +i`: not even root may write the file, or create files in the folder."""
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True) if shutil.which("chattr") else None
    if done is None or done.returncode != 0:
        pytest.skip(f"chattr +i is not available here ({done.stderr.strip() if done else 'no chattr'})")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


@contextmanager
def read_only_mount(folder: Path):
    """The folder bind-mounted read-only onto itself: EROFS for everyone, root included."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting needs root and mount(8)")
    done = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"bind mounts are not permitted here ({done.stderr.strip()})")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], check=True, capture_output=True)
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def as_unprivileged(*args: str) -> subprocess.CompletedProcess:
    """`python -m harvest ...` as user nobody (modes apply), or as ourselves when not root."""
    prefix = []
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("dropping root needs setpriv(1)")
        prefix = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
        probe = subprocess.run([*prefix, sys.executable, "-c", "import harvest.cli"], cwd="/", capture_output=True, text=True)
        if probe.returncode != 0:
            pytest.skip(f"user nobody cannot run this checkout's Python ({probe.stderr.strip().splitlines()[-1:]})")
    return subprocess.run([*prefix, sys.executable, "-m", "harvest", *args], cwd=REPO, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("how", ["chattr", "mount"])
def test_read_only_database_file(how, harvested, fake_arxiv, config_file, tmp_path):
    folder = harvested.parent
    before, listing = file_state(harvested), directory_listing(folder)
    message = f"Error: harvest failed: {harvested}: database file is read-only"
    if how == "chattr":
        with immutable(harvested):
            result = harvest(fake_arxiv, harvested, config_file)
        assert (result.exit_code, result.output) == (1, message + "\n")
    else:
        with read_only_mount(folder):
            result = harvest(fake_arxiv, harvested, config_file)
            # Reading needs no write access: the README is still written from it.
            readme = invoke("readme", "--db", harvested, "--readme", tmp_path / "README.md", "--config", config_file)
        # A read-only mount makes the folder read-only too; the file is named first.
        assert (result.exit_code, result.output) == (1, message + "\n")
        assert (readme.exit_code, readme.output) == (0, f"readme: {tmp_path / 'README.md'} updated\n")
    assert fake_arxiv.requests == []
    assert (file_state(harvested), directory_listing(folder)) == (before, listing)


@pytest.mark.parametrize("how", ["chattr", "mount"])
def test_read_only_folder(how, harvested, fake_arxiv, config_file):
    """The file is writable but its folder is not: SQLite could not write its journal."""
    folder = harvested.parent
    before, listing = file_state(harvested), directory_listing(folder)
    message = f"Error: harvest failed: {harvested}: directory {folder} is not writable (SQLite needs it for its journal)"
    if how == "chattr":
        with immutable(folder):
            result = harvest(fake_arxiv, harvested, config_file)
        assert (result.exit_code, result.output) == (1, message + "\n")
    else:
        new_db = folder / "new.db"
        with read_only_mount(folder):
            result = harvest(fake_arxiv, new_db, config_file)
        assert (result.exit_code, result.output) == (
            1, f"Error: harvest failed: {new_db}: cannot create the database, directory {folder} is not writable\n"
        )
    assert fake_arxiv.requests == []
    assert (file_state(harvested), directory_listing(folder)) == (before, listing)


@pytest.fixture
def shared_folder(harvested, config_file):
    """A world-readable copy of the dataset and config (pytest's own tmp folders are 0700)."""
    folder = Path(tempfile.mkdtemp(prefix="ai4mat-ro-"))
    try:
        folder.chmod(0o755)
        (folder / "data").mkdir()
        shutil.copy(harvested, folder / "data" / "ai4mat.db")
        shutil.copy(config_file, folder / "config.json")
        (folder / "config.json").chmod(0o644)
        yield folder
    finally:
        shutil.rmtree(folder)


@pytest.mark.parametrize(
    "file_mode, folder_mode, message",
    [
        (0o444, 0o777, "{db}: database file is read-only"),
        (0o666, 0o755, "{db}: directory {folder} is not writable (SQLite needs it for its journal)"),
    ],
    ids=["file-0444", "folder-0755-of-root"],
)
def test_read_only_by_file_mode_for_an_unprivileged_user(file_mode, folder_mode, message, shared_folder, fake_arxiv):
    folder, db_path = shared_folder / "data", shared_folder / "data" / "ai4mat.db"
    folder.chmod(folder_mode)
    db_path.chmod(file_mode)
    before, listing = file_state(db_path), directory_listing(folder)
    process = as_unprivileged(
        "harvest", "--db", str(db_path), "--config", str(shared_folder / "config.json"), "--api-url", fake_arxiv.url, "--delay", "0"
    )
    assert (process.returncode, process.stdout, process.stderr) == (
        1, "", f"Error: harvest failed: {message.format(db=db_path, folder=folder)}\n"
    )
    assert fake_arxiv.requests == []
    assert (file_state(db_path), directory_listing(folder)) == (before, listing)


# ------------------------------------------------------------------ a full disk


@contextmanager
def tiny_disk(folder: Path, size: str):
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"tmpfs mounts are not permitted here ({done.stderr.strip()})")
    try:
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)]).returncode != 0:
            subprocess.run(["umount", "--lazy", str(folder)], check=True)


def test_disk_fills_while_storing_a_run(fake_arxiv, tmp_path, config_file, sleeps):
    """Run 2 does not fit: it fails with the cause, papers stay as they were; with room, run 3 stores it all."""
    with tiny_disk(tmp_path / "disk", "640k") as disk:
        db_path = disk / "ai4mat.db"
        fake_arxiv.papers = [make_paper(n) for n in range(1, 51)]
        assert harvest(fake_arxiv, db_path, config_file).output == "harvest: 50 new, 0 updated, 0 unchanged (1 request)\n"
        before = dump(db_path)
        fake_arxiv.papers = [make_paper(n) for n in range(1, 401)]
        result = harvest(fake_arxiv, db_path, config_file)
        assert (result.exit_code, result.output) == (1, "Error: harvest failed: could not store the run (database or disk is full)\n")
        assert dump(db_path) == before
        assert integrity(db_path) == ("ok", "ok")
        assert directory_listing(disk) == ["ai4mat.db"]
        assert [(r["id"], r["status"], r["error"]) for r in runs(db_path)] == [
            (1, "ok", None), (2, "failed", "could not store the run (database or disk is full)")
        ]
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        result = harvest(fake_arxiv, db_path, config_file)
        assert (result.exit_code, result.output) == (0, "harvest: 350 new, 0 updated, 50 unchanged (4 requests)\n")
        assert integrity(db_path) == ("ok", "ok")
        assert len(dump(db_path, ("papers",))["papers"]) == 400


def test_disk_already_full_fails_before_asking_arxiv(fake_arxiv, tmp_path, config_file, sleeps):
    with tiny_disk(tmp_path / "disk", "640k") as disk:
        db_path = disk / "ai4mat.db"
        fake_arxiv.papers = [make_paper(n) for n in range(1, 51)]
        assert harvest(fake_arxiv, db_path, config_file).exit_code == 0
        filler = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(filler, b"\0" * 4096):
                pass
        except OSError:  # ENOSPC: the disk is full
            pass
        finally:
            os.close(filler)
        before = file_state(db_path)
        fake_arxiv.requests.clear()
        result = harvest(fake_arxiv, db_path, config_file)
        assert (result.exit_code, result.output) == (
            1, "Error: harvest failed: could not record the start of the run (database or disk is full)\n"
        )
        assert fake_arxiv.requests == []
        assert file_state(db_path) == before
        assert directory_listing(disk) == ["ai4mat.db", "filler"]


# ------------------------------------------------------------------ bad config.json

BAD_CONFIGS = {
    "invalid-json": ('{"query": "cat:cs.LG",}', "{c}: invalid JSON at line 1 column 23: Expecting property name enclosed in double quotes"),
    "empty-file": ("", "{c}: invalid JSON at line 1 column 1: Expecting value"),
    "not-an-object": ('["cat:cs.LG"]', "{c}: expected a JSON object, got list"),
    "missing-query": ('{"max_results": 10}', '{c}: missing "query" (an arXiv search query, e.g. "cat:cond-mat.mtrl-sci")'),
    "blank-query": ('{"query": "   "}', '{c}: "query" must be a non-empty string'),
    "query-not-a-string": ('{"query": 42}', '{c}: "query" must be a non-empty string, got 42'),
    "max-results-a-string": ('{"query": "q", "max_results": "100"}', '{c}: "max_results" must be a positive integer, got "100"'),
    "max-results-zero": ('{"query": "q", "max_results": 0}', '{c}: "max_results" must be a positive integer, got 0'),
    "max-results-bool": ('{"query": "q", "max_results": true}', '{c}: "max_results" must be a positive integer, got true'),
    "readme-tags-not-bool": ('{"query": "q", "readme_tags": "yes"}', '{c}: "readme_tags" must be true or false, got "yes"'),
    "vocabulary-not-a-path": ('{"query": "q", "vocabulary": 3}', '{c}: "vocabulary" must be the path of a JSON tag vocabulary (relative to the config file), or null, got 3'),
    "delay-negative": ('{"query": "q", "delay_seconds": -1}', '{c}: "delay_seconds" must be a number of seconds >= 0'),
    "delay-a-string": ('{"query": "q", "delay_seconds": "3"}', '{c}: "delay_seconds" must be a number of seconds >= 0, got "3"'),
    "page-size-too-big": ('{"query": "q", "page_size": 5000}', '{c}: "page_size" must be an integer from 1 to 2000 (arXiv\'s maximum per request), got 5000'),
    "page-size-a-float": ('{"query": "q", "page_size": 10.5}', '{c}: "page_size" must be an integer from 1 to 2000 (arXiv\'s maximum per request), got 10.5'),
    "unknown-timezone": ('{"query": "q", "timezone": "Mars/Olympus_Mons"}', '{c}: unknown time zone "Mars/Olympus_Mons" (use an IANA name such as Asia/Singapore)'),
    "timezone-path-escape": ('{"query": "q", "timezone": "../../etc/passwd"}', '{c}: unknown time zone "../../etc/passwd" (use an IANA name such as Asia/Singapore)'),
    "unknown-key": ('{"query": "q", "querry": "q"}', '{c}: unknown key "querry" (known: api_url, dataset_url, delay_seconds, max_results, page_size, query, readme_max_papers, readme_tags, repository, timezone, timezone_label, title, vocabulary)'),
    "api-url-not-http": ('{"query": "q", "api_url": "file:///etc/passwd"}', "{c}: \"api_url\" must be an http(s) URL, got 'file:///etc/passwd'"),
    "readme-max-papers-negative": ('{"query": "q", "readme_max_papers": -5}', '{c}: "readme_max_papers" must be a positive integer, got -5'),
}


@pytest.mark.parametrize("kind", BAD_CONFIGS)
def test_bad_config_is_one_line_and_touches_nothing(kind, harvested, fake_arxiv, tmp_path):
    text, message = BAD_CONFIGS[kind]
    config = tmp_path / "bad.json"
    config.write_text(text)
    readme = tmp_path / "README.md"
    readme.write_text("# Tracker\n")
    states = file_state(harvested), file_state(readme), directory_listing(harvested.parent)
    for args in (
        ("harvest", "--db", harvested, "--config", config, "--api-url", fake_arxiv.url),
        ("readme", "--db", harvested, "--readme", readme, "--config", config),
    ):
        result = invoke(*args)
        assert (result.exit_code, result.output) == (1, f"Error: {message.format(c=config)}\n")
    assert fake_arxiv.requests == []
    assert (file_state(harvested), file_state(readme), directory_listing(harvested.parent)) == states


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda c: None, "{c}: config file not found (`ai4mat init --config {c}` writes the default one)"),
        (lambda c: c.write_bytes(b'{"query": "\xff\xfe"}'), "{c}: cannot read config file ('utf-8' codec can't decode byte 0xff in position 11: invalid start byte)"),
    ],
    ids=["missing", "not-utf8"],
)
def test_unreadable_config(make, message, fake_arxiv, tmp_path):
    config = tmp_path / "config.json"
    make(config)
    db_path = tmp_path / "ai4mat.db"
    result = invoke("harvest", "--db", db_path, "--config", config, "--api-url", fake_arxiv.url)
    assert (result.exit_code, result.output) == (1, f"Error: {message.format(c=config)}\n")
    assert not db_path.exists() and fake_arxiv.requests == []


def test_config_that_is_a_directory(fake_arxiv, tmp_path):
    (tmp_path / "config.json").mkdir()
    result = invoke("harvest", "--db", tmp_path / "ai4mat.db", "--config", tmp_path / "config.json", "--api-url", fake_arxiv.url)
    # click's own usage error: exit 2, the cause on the last line.
    assert (result.exit_code, result.output.splitlines()[-1]) == (
        2, f"Error: Invalid value for '--config': File '{tmp_path / 'config.json'}' is a directory."
    )
    assert directory_listing(tmp_path) == ["config.json"] and fake_arxiv.requests == []


# ------------------------------------------------------------------ README files readme refuses

START, END = "<!-- ARXIV_PAPERS_START -->", "<!-- ARXIV_PAPERS_END -->"
FIX = f"fix the {START} / {END} lines by hand"


@pytest.mark.parametrize(
    "text, message",
    [
        (f"# T\n{START}\nold\n", f"README has a start marker without its pair; {FIX}"),
        (f"# T\nold\n{END}\n", f"README has an end marker without its pair; {FIX}"),
        (f"# T\n{END}\nold\n{START}\n", f"README has a start marker without its pair; {FIX}"),
        (f"{START}\na\n{END}\n{START}\nb\n{END}\n", f"README has more than one {START}; keep one section and rerun"),
    ],
    ids=["start-only", "end-only", "reversed", "two-sections"],
)
def test_readme_with_broken_markers_is_left_alone(text, message, harvested, tmp_path, config_file):
    readme = tmp_path / "README.md"
    readme.write_text(text)
    before = file_state(readme)
    result = invoke("readme", "--db", harvested, "--readme", readme, "--config", config_file)
    assert (result.exit_code, result.output) == (1, f"Error: {readme}: {message}\n")
    assert file_state(readme) == before
    assert directory_listing(tmp_path) == ["README.md", "config.json", "data"]


def test_disk_full_before_a_new_dataset_gets_its_schema(fake_arxiv, tmp_path, config_file, sleeps):
    """The schema is created in one transaction: no half-made file that later runs would refuse."""
    with tiny_disk(tmp_path / "disk", "12k") as disk:
        db_path = disk / "ai4mat.db"
        fake_arxiv.papers = [make_paper(n) for n in range(1, 6)]
        result = harvest(fake_arxiv, db_path, config_file)
        assert (result.exit_code, result.output) == (
            1, f"Error: harvest failed: {db_path}: cannot use this database (database or disk is full)\n"
        )
        assert fake_arxiv.requests == [] and open_handles(db_path) == []
        # What is left is an empty file, which the next run takes as a new dataset.
        assert (directory_listing(disk), db_path.stat().st_size) == (["ai4mat.db"], 0)
        subprocess.run(["mount", "-o", "remount,size=16m", str(disk)], check=True)
        result = harvest(fake_arxiv, db_path, config_file)
        assert (result.exit_code, result.output) == (0, "harvest: 5 new, 0 updated, 0 unchanged (1 request)\n")
        assert integrity(db_path) == ("ok", "ok")


# ------------------------------------------------------------------ config and README files that are not files

def ai4mat_process(*args, timeout: float = 30) -> subprocess.CompletedProcess:
    """`python -m harvest` as a real process, its memory capped at 1 GiB: reading /dev/zero once
    ran until memory ran out, and reading a named pipe waited forever (the timeout shows it)."""

    def cap_memory():
        resource.setrlimit(resource.RLIMIT_AS, (2**30, 2**30))

    return subprocess.run(
        [sys.executable, "-m", "harvest", *map(str, args)], cwd=REPO, capture_output=True, text=True,
        timeout=timeout, preexec_fn=cap_memory,
    )


SPECIAL_FILES = {
    "named-pipe": (lambda p: os.mkfifo(p) or p, "not a regular file (a pipe or device); refusing to read it"),
    "dev-zero": (lambda p: Path("/dev/zero"), "not a regular file (a pipe or device); refusing to read it"),
    "3-GB-file": (lambda p: os.truncate(p.touch() or p, 3_000_000_000) or p, "3,000,000,000 bytes, too large to be this file (at most {limit}); refusing to read it"),
}


@pytest.mark.parametrize("kind", SPECIAL_FILES)
@pytest.mark.parametrize("option", ["--config", "--readme"])
def test_config_or_readme_that_is_not_a_plain_file_is_refused(kind, option, harvested, fake_arxiv, tmp_path, config_file):
    make, message = SPECIAL_FILES[kind]
    special = make(tmp_path / "special")
    readme = tmp_path / "README.md"
    readme.write_text("# Tracker\n")
    states = file_state(harvested), file_state(readme), directory_listing(tmp_path)
    if option == "--config":
        args = ("harvest", "--db", harvested, "--config", special, "--api-url", fake_arxiv.url)
        limit = "1,000,000"
    else:
        args = ("readme", "--db", harvested, "--readme", special, "--config", config_file)
        limit = "32,000,000"
    process = ai4mat_process(*args)
    assert (process.returncode, process.stdout, process.stderr) == (1, "", f"Error: {special}: {message.format(limit=limit)}\n")
    assert fake_arxiv.requests == []
    assert (file_state(harvested), file_state(readme), directory_listing(tmp_path)) == states


# ------------------------------------------------------------------ writing the README

CONCURRENT_WRITER = """
import sys
import click
from harvest.cli import cli

failures = []
for _ in range(int(sys.argv[1])):
    try:
        cli.main(sys.argv[2:], standalone_mode=False)
    except click.ClickException as error:
        failures.append(error.format_message())
print(f"{len(failures)} failed", *sorted(set(failures)), sep="\\n", file=sys.stderr)
"""


def test_concurrent_readme_runs_all_succeed(harvested, tmp_path, config_file):
    """Concurrent `ai4mat readme` runs shared one `.README.md.tmp`: one renamed it away while
    another was writing or about to rename it (41 of 150 failed). Five processes, each with its
    own time zone label so that every run rewrites the section, run `readme` 100 times at once."""
    readme = tmp_path / "README.md"
    readme.write_text("# Tracker\n")
    processes = []
    for writer in range(5):
        config = tmp_path / f"config{writer}.json"
        config.write_text(json.dumps({"query": "q", "timezone": "UTC", "timezone_label": f"L{writer}"}))
        args = ["readme", "--db", harvested, "--readme", readme, "--config", config]
        processes.append(subprocess.Popen(
            [sys.executable, "-c", CONCURRENT_WRITER, "100", *map(str, args)], cwd=REPO,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        ))
    reports = [process.communicate(timeout=120)[1] for process in processes]
    assert reports == ["0 failed\n"] * 5
    text = readme.read_text()
    assert text.startswith("# Tracker\n\n\n<!-- ARXIV_PAPERS_START -->\n\n## New Papers (20)\n\n") and text.endswith("<!-- ARXIV_PAPERS_END -->")
    assert directory_listing(tmp_path) == sorted(["README.md", "config.json", "data"] + [f"config{n}.json" for n in range(5)])


def test_readme_on_a_full_disk_is_left_whole_with_no_temporary_file(harvested, tmp_path, config_file):
    with tiny_disk(tmp_path / "disk", "64k") as disk:
        readme = disk / "README.md"
        readme.write_text("# Tracker\n\n<!-- ARXIV_PAPERS_START -->\nold\n<!-- ARXIV_PAPERS_END -->\n")
        filler = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(filler, b"\0" * 4096):
                pass
        except OSError:  # ENOSPC: the disk is full
            pass
        finally:
            os.close(filler)
        before = file_state(readme)
        result = invoke("readme", "--db", harvested, "--readme", readme, "--config", config_file)
        assert (result.exit_code, result.output) == (1, f"Error: {readme}: cannot write (No space left on device)\n")
        assert file_state(readme) == before
        assert directory_listing(disk) == ["README.md", "filler"]


def test_symlinked_readme_is_written_through_to_its_target(harvested, tmp_path, config_file):
    """The symlink was replaced by a regular file, and its target left stale."""
    (tmp_path / "docs").mkdir()
    target = tmp_path / "docs" / "README.md"
    target.write_text("# Tracker\n")
    target.chmod(0o640)
    link = tmp_path / "README.md"
    link.symlink_to("docs/README.md")
    result = invoke("readme", "--db", harvested, "--readme", link, "--config", config_file)
    assert (result.exit_code, result.output) == (0, f"readme: {link} updated\n")
    assert link.is_symlink() and os.readlink(link) == "docs/README.md"
    assert target.read_text().startswith("# Tracker\n\n\n<!-- ARXIV_PAPERS_START -->\n\n## New Papers (20)\n\n")
    assert oct(target.stat().st_mode & 0o777) == oct(0o640)
    assert directory_listing(tmp_path / "docs") == ["README.md"]
    assert invoke("readme", "--db", harvested, "--readme", link, "--config", config_file).output == f"readme: {link} unchanged\n"

"""Serve the dataset with Datasette: live over a file a harvest writes, or immutable as published.

`ai4mat serve` and `scripts/publish.sh` share these settings (`python -m harvest.serve`
prints them for the script), so the local site and the hosted one behave alike.

Two modes:
- live (the default of `ai4mat serve` when the file and its folder are writable): the file is
  switched to WAL journal mode and served mutable, so a harvest or backfill may write it while
  it is served; each request sees one committed state (plugins/ai4mat_live.py) and a commit is
  served at once. The download is a consistent snapshot made by the live plugin.
- immutable (`--immutable`, `scripts/publish.sh`, and a file or folder that is not writable):
  Datasette reads the file with `immutable=1`, skipping every lock and change check; the file
  must not be written while served (a long-running immutable server over a written file serves
  wrong counts and "database disk image is malformed").
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import socket
import sqlite3
import sys
import tempfile
from pathlib import Path

from .store import SCHEMA_VERSION, StoreError, check_schema_version, open_db

DEFAULT_PORT = 8001
DEFAULT_HOST = "127.0.0.1"
# metadata.yml configures the database by this name, and Datasette names a database after its file.
DATABASE_NAME = "ai4mat"

# Chosen, not defaulted. 3 s leaves room for ad-hoc SQL without letting one request hog a
# replica; the pages the site links to answer far faster (benchmarks/RESULTS.md, section 6).
# 1000 rows is a full day even after a long outage; more belongs in the download.
# The file changes once a day, so responses may be cached for an hour.
# Suggested facets try a facet on every column of every table page: 1.6 s of the papers page's
# 1.9 s at a million papers; the useful facets are configured in metadata.yml instead.
SETTINGS = {
    "sql_time_limit_ms": 3000,
    "max_returned_rows": 1000,
    "default_cache_ttl": 3600,
    "suggest_facets": "off",
}

# A live file changes whenever a harvest commits, so pages must not be cached for an hour there.
LIVE_SETTINGS = {**SETTINGS, "default_cache_ttl": 0}

LIVE, IMMUTABLE = "live", "immutable"


class ServeError(Exception):
    """The dataset cannot be served as asked; the message says why."""


def setting_options(settings: dict = SETTINGS) -> list[str]:
    """`--setting NAME VALUE ...` for `settings`, as `datasette serve` and `publish` take them."""
    options: list[str] = []
    for name, value in settings.items():
        options += ["--setting", name, str(value)]
    return options


def check_files(db_path: str | os.PathLike, metadata_path: str | os.PathLike, plugins_dir: str | os.PathLike) -> None:
    """Raise ServeError unless the database is a readable ai4mat dataset and the site files exist."""
    try:
        db = open_db(db_path, create=False, writable=False)
    except StoreError as error:
        raise ServeError(str(error)) from None
    try:
        version = check_schema_version(db, db_path)
    finally:
        db.close()
    if version < SCHEMA_VERSION:
        # Serving opens the file read-only, so it cannot migrate it; the site's queries need the new schema.
        raise ServeError(
            f"{db_path}: schema {version} is older than this ai4mat's ({SCHEMA_VERSION}); "
            f"run `ai4mat harvest --db {db_path}` once, which migrates the file in place before fetching"
        )
    if not Path(metadata_path).is_file():
        raise ServeError(f"{metadata_path}: metadata file not found (leave out --metadata to serve the site shipped with ai4mat)")
    if not Path(plugins_dir).is_dir():
        raise ServeError(f"{plugins_dir}: plugins directory not found (pass --plugins-dir)")


def port_free(host: str, port: int) -> None:
    """Raise ServeError, in one line naming --port and make's PORT=, unless `host`:`port` can be listened on.

    Binds a test socket the way Datasette's server (uvicorn) will, SO_REUSEADDR included, so a
    port left in TIME_WAIT by a server just stopped counts as free, as it is for uvicorn.
    """
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise ServeError(f"cannot listen on {host}: unknown host ({error.strerror}); pass another --host") from None
    family, kind, proto, _, address = addresses[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise ServeError(
                    f"port {port} is already in use on {host}; choose another with --port "
                    f"(with make: make serve PORT={port + 1 if port < 65535 else DEFAULT_PORT})"
                ) from None
            raise ServeError(
                f"cannot listen on {host}:{port} ({error.strerror}); choose another --port or --host "
                "(with make: PORT= or HOST=)"
            ) from None


def choose_mode(db_path: str | os.PathLike, *, immutable: bool = False) -> tuple[str, str]:
    """(LIVE or IMMUTABLE, the reason in a few words) for serving `db_path`.

    Live needs to write the file (WAL mode) and its folder (SQLite keeps `-wal` and `-shm`
    beside the file); where it cannot, the file is served immutable, which a read-only mount
    allows, since then nobody can be writing it either.
    """
    if immutable:
        return IMMUTABLE, "as asked"
    path = Path(db_path).resolve()
    if not os.access(path, os.W_OK):
        return IMMUTABLE, "the file is read-only"
    if not os.access(path.parent, os.W_OK):
        return IMMUTABLE, "its folder is read-only"
    return LIVE, "a harvest may write it while it is served"


def enable_wal(db_path: str | os.PathLike) -> None:
    """Put the file in WAL journal mode (persistent in the file; a no-op if it already is).

    In WAL, readers never block the writer nor see its uncommitted pages, and each read
    transaction sees one committed state. Waits for a running harvest's transaction to end.
    """
    try:
        conn = sqlite3.connect(db_path, timeout=60)
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error as error:
        raise ServeError(f"{db_path}: cannot switch the file to WAL journal mode for live serving ({error}); "
                         "pass --immutable to serve it as it is") from None
    if mode != "wal":
        raise ServeError(f"{db_path}: SQLite kept journal mode {mode!r}; pass --immutable to serve it as it is")


def served_path(db_path: str | os.PathLike) -> Path:
    """A path named ai4mat.db for `db_path`: itself, or a symlink to it in a private folder.

    Datasette names a database after its file's stem, and metadata.yml (canned queries,
    descriptions, the site's links) is written for `ai4mat`. SQLite resolves the symlink, so
    its journal, -wal and -shm stay beside the real file. The folder is per user and per file
    and reused, so repeated serves leave one symlink, not one each.
    """
    path = Path(db_path).resolve()
    if path.name == f"{DATABASE_NAME}.db":
        return path
    key = hashlib.sha256(str(path).encode()).hexdigest()[:16]
    folder = Path(tempfile.gettempdir()) / f"ai4mat-serve-{os.getuid()}" / key
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    link = folder / f"{DATABASE_NAME}.db"
    if not (link.is_symlink() and os.readlink(link) == str(path)):
        staged = folder / f".{os.getpid()}.db"
        staged.unlink(missing_ok=True)
        staged.symlink_to(path)
        os.replace(staged, link)
    return link


def _private_folder() -> Path:
    folder = Path(tempfile.gettempdir()) / f"ai4mat-serve-{os.getuid()}"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


def write_metadata(metadata: dict) -> Path:
    """`metadata` as a JSON file for this process's Datasette (which it becomes, keeping the pid).

    The files of processes that have ended are removed, so repeated serves leave one each at most.
    """
    folder = _private_folder() / "metadata"
    folder.mkdir(exist_ok=True, mode=0o700)
    for old in folder.glob("metadata-*.json"):
        try:
            os.kill(int(old.stem.removeprefix("metadata-")), 0)
        except ProcessLookupError:
            old.unlink(missing_ok=True)
        except (ValueError, PermissionError):
            pass
    path = folder / f"metadata-{os.getpid()}.json"
    staged = folder / f".metadata-{os.getpid()}.json"
    staged.write_text(json.dumps(metadata, ensure_ascii=False), encoding="utf-8")
    os.replace(staged, path)
    return path


def datasette_argv(
    db_path: str | os.PathLike,
    *,
    metadata_path: str | os.PathLike = "metadata.yml",
    plugins_dir: str | os.PathLike | None = None,
    templates_dir: str | os.PathLike | None = None,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    mode: str = IMMUTABLE,
) -> list[str]:
    """The command line that serves `db_path` with the site's metadata and plugins.

    IMMUTABLE (`-i`): Datasette offers the file for download with an ETag and skips
    per-request change checks; the file must not be written while served. LIVE: the file is
    served mutable (it must be in WAL mode, see enable_wal).
    """
    if plugins_dir is None:
        plugins_dir = Path(metadata_path).parent / "plugins"
    if templates_dir is None:
        # The page templates (a paper's row page) sit beside the plugins.
        templates_dir = Path(plugins_dir).parent / "templates"
    return [
        sys.executable, "-m", "datasette", "serve",
        *(["-i", str(db_path)] if mode == IMMUTABLE else [str(db_path)]),
        "--metadata", str(metadata_path),
        "--plugins-dir", str(plugins_dir),
        *(["--template-dir", str(templates_dir)] if Path(templates_dir).is_dir() else []),
        "--host", host,
        "--port", str(port),
        *setting_options(LIVE_SETTINGS if mode == LIVE else SETTINGS),
        # The JSON API is meant to be called from other sites' pages.
        "--cors",
    ]


def site_url(host: str, port: int) -> str:
    return f"http://{host}:{port}/"


if __name__ == "__main__":
    print(" ".join(setting_options()))

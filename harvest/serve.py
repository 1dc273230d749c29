"""Serve the dataset with Datasette, exactly as it is published.

`ai4mat serve` and `scripts/publish.sh` share these settings (`python -m harvest.serve`
prints them for the script), so the local site and the hosted one behave alike.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .store import SCHEMA_VERSION, StoreError, check_schema_version, open_db

DEFAULT_PORT = 8001
DEFAULT_HOST = "127.0.0.1"

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


class ServeError(Exception):
    """The dataset cannot be served as asked; the message says why."""


def setting_options() -> list[str]:
    """`--setting NAME VALUE ...` for SETTINGS, as `datasette serve` and `publish` take them."""
    options: list[str] = []
    for name, value in SETTINGS.items():
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
        raise ServeError(f"{metadata_path}: metadata file not found (run from the repository root or pass --metadata)")
    if not Path(plugins_dir).is_dir():
        raise ServeError(f"{plugins_dir}: plugins directory not found (pass --plugins-dir)")


def datasette_argv(
    db_path: str | os.PathLike,
    *,
    metadata_path: str | os.PathLike = "metadata.yml",
    plugins_dir: str | os.PathLike | None = None,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
) -> list[str]:
    """The command line that serves `db_path` immutable with the site's metadata and plugins.

    Immutable (`-i`): Datasette then offers the file for download with an ETag and skips
    per-request change checks; the file must not be written while served.
    """
    if plugins_dir is None:
        plugins_dir = Path(metadata_path).parent / "plugins"
    return [
        sys.executable, "-m", "datasette", "serve",
        "-i", str(db_path),
        "--metadata", str(metadata_path),
        "--plugins-dir", str(plugins_dir),
        "--host", host,
        "--port", str(port),
        *setting_options(),
        # The JSON API is meant to be called from other sites' pages.
        "--cors",
    ]


def site_url(host: str, port: int) -> str:
    return f"http://{host}:{port}/"


if __name__ == "__main__":
    print(" ".join(setting_options()))

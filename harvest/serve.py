"""Serve the dataset with Datasette, exactly as it is published.

`ai4mat serve` and `scripts/publish.sh` share these settings (`python -m harvest.serve`
prints them for the script), so the local site and the hosted one behave alike.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .store import StoreError, open_db

DEFAULT_PORT = 8001
DEFAULT_HOST = "127.0.0.1"

# Chosen, not defaulted: every canned query is bounded and answers in well under 100 ms at a
# million papers; 3 s leaves room for ad-hoc SQL and facets without letting one request hog a
# replica. 1000 rows is a full day even after a long outage; more belongs in the download.
# The file changes once a day, so responses may be cached for an hour.
SETTINGS = {
    "sql_time_limit_ms": 3000,
    "max_returned_rows": 1000,
    "default_cache_ttl": 3600,
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
        open_db(db_path, create=False, writable=False).close()
    except StoreError as error:
        raise ServeError(str(error)) from None
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
    # The page templates (a paper's row page) sit beside the plugins.
    templates_dir = Path(plugins_dir).parent / "templates"
    return [
        sys.executable, "-m", "datasette", "serve",
        "-i", str(db_path),
        "--metadata", str(metadata_path),
        "--plugins-dir", str(plugins_dir),
        *(["--template-dir", str(templates_dir)] if templates_dir.is_dir() else []),
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

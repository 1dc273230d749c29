"""Datasette plugin: lookups that forgive how a person writes an arXiv id or an author's name.

- SQL functions for the canned queries, applied to the parameter (never the column, so the
  indexes stay in use): `arxiv_id(text)`, the bare id of `2604.14082v4`, `arXiv:2604.14082` or
  `https://arxiv.org/abs/2604.14082v4`; `author_key(name)` and `author_surname_key(name)`, the
  keys paper_authors stores; `author_matches(name, query)`, whether an author is the one asked for.
  All come from `harvest.lookups`, the code the harvester stores the keys with.
- A paper's page at its plain id: `/ai4mat/papers/2604.27810` (Datasette wants `2604~2E27810`),
  `/ai4mat/papers/cond-mat/0102536`, versioned ids, `arXiv:` prefixes and pasted abs/pdf URLs
  redirect (302) to the paper's row page; an id that is not in the dataset keeps its 404.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from datasette import hookimpl
from datasette.utils import tilde_decode, tilde_encode

try:
    from harvest import lookups
except ImportError:
    # The published image installs Datasette and the plugins' pins, not ai4mat:
    # scripts/publish.sh ships harvest/lookups.py (standard library only) beside this file.
    _spec = importlib.util.spec_from_file_location("ai4mat_lookup_rules", Path(__file__).with_name("ai4mat_lookup_rules.py"))
    lookups = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(lookups)

TABLE = "papers"
# Row formats a redirect keeps: /ai4mat/papers/2604.27810.json -> /ai4mat/papers/2604~2E27810.json
FORMATS = (".json",)


@hookimpl
def prepare_connection(conn):
    conn.create_function("arxiv_id", 1, lookups.normalise_id, deterministic=True)
    conn.create_function("author_key", 1, lookups.author_key, deterministic=True)
    conn.create_function("author_surname_key", 1, lookups.author_surname_key, deterministic=True)
    conn.create_function("author_matches", 2, lookups.author_matches, deterministic=True)


def paper_id_in_path(datasette, path: str) -> tuple[str, str, str] | None:
    """(database, arxiv_id, format) when `path` asks for a paper's page by an id written other
    than Datasette's row URL, else None."""
    for name in datasette.databases:
        prefix = datasette.urls.table(name, TABLE) + "/"
        if path.startswith(prefix):
            break
    else:
        return None
    written = path[len(prefix):]
    suffix = next((ending for ending in FORMATS if written.lower().endswith(ending)), "")
    written = written[: len(written) - len(suffix)] if suffix else written
    arxiv_id = lookups.normalise_id(tilde_decode(written))
    if not lookups.BARE_ID_RE.fullmatch(arxiv_id) or written == tilde_encode(arxiv_id):
        return None  # not an id, or the row URL itself (Datasette serves it)
    return name, arxiv_id, suffix


async def redirect_location(datasette, path: str, query_string: bytes) -> str | None:
    """Where a paper's page asked for by a pasted id lives, or None to let Datasette answer."""
    found = paper_id_in_path(datasette, path)
    if found is None:
        return None
    name, arxiv_id, suffix = found
    db = datasette.get_database(name)
    if TABLE not in await db.table_names():
        return None
    known = await db.execute(f"select 1 from {TABLE} where arxiv_id = ?", [arxiv_id])
    if not known.rows:
        return None  # not in the dataset: Datasette's 404
    location = datasette.urls.row(name, TABLE, tilde_encode(arxiv_id)) + suffix
    return location + ("?" + query_string.decode("latin-1") if query_string else "")


@hookimpl
def asgi_wrapper(datasette):
    def wrap(app):
        async def paper_by_id(scope, receive, send):
            if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
                location = await redirect_location(datasette, scope["path"], scope.get("query_string", b""))
                if location is not None:
                    await send({
                        "type": "http.response.start",
                        "status": 302,
                        "headers": [(b"location", location.encode("utf-8")), (b"content-type", b"text/plain; charset=utf-8")],
                    })
                    await send({"type": "http.response.body", "body": b""})
                    return
            return await app(scope, receive, send)

        return paper_by_id

    return wrap

"""Datasette plugin for the AI4MAT dataset: safe full-text queries and links to paper pages.

Loaded with `datasette --plugins-dir plugins` (also by `datasette publish`), so it must not
import anything beyond Datasette and the standard library.
"""

from __future__ import annotations

import html
import re
import urllib.parse

from datasette import hookimpl
from datasette.utils import tilde_encode
from markupsafe import Markup

# Runs of letters and digits (the unicode61 tokenizer's idea of a word), optionally joined
# by - . / ' so "crystal-structure" and "Li-ion" stay one phrase.
_TERM = re.compile(r"\w+(?:[-./']\w+)*\*?")
NO_MATCH = '""'  # an empty phrase: a valid FTS5 query that matches nothing
MAX_TERMS = 16
# Short prefixes (ma*) expand to thousands of terms and take seconds; below this, * is ignored.
MIN_PREFIX = 4
_MARKED = re.compile(r"\*\*(.+?)\*\*", re.S)


def fts_query(text: str | None) -> str:
    """Turn free text into an FTS5 query that never raises a syntax error.

    Every word becomes a double-quoted phrase (so AND, OR, NEAR, column names, quotes and
    brackets are plain text), all of them required; a trailing `*` after at least MIN_PREFIX
    characters keeps its meaning as a prefix search (`diffus*`). Text without any word gives a
    query that matches nothing.
    """
    if not text:
        return NO_MATCH
    terms = []
    for term in _TERM.findall(str(text))[:MAX_TERMS]:
        word = term.rstrip("*")
        prefix = term.endswith("*") and len(word) >= MIN_PREFIX
        terms.append('"' + word.replace('"', '""') + '"' + ("*" if prefix else ""))
    return " ".join(terms) or NO_MATCH


# The table whose search box is sent to the canned query, and that query.
DATABASE, TABLE, SEARCH_QUERY = "ai4mat", "papers", "search"


# trylast: Datasette's own prepare_connection registers escape_fts, and the last one registered wins.
@hookimpl(trylast=True)
def prepare_connection(conn):
    conn.create_function("fts_query", 1, fts_query, deterministic=True)
    # The table view's ?_search= passes the text through escape_fts(), which quotes diffus* into
    # a phrase (matching nothing) and fails on a lone " with an fts5 syntax error; give it the
    # canned search's rules instead (?_searchmode=raw still takes FTS5 syntax as typed).
    conn.create_function("escape_fts", 1, fts_query, deterministic=True)


def search_redirect(datasette, path: str, query_string: bytes) -> str | None:
    """Where the papers page's search box goes: the canned search, or None to serve the page.

    Datasette's table view counts every match before showing 100 (4 s for a common word at a
    million papers); the canned search ranks the newest matches and answers in milliseconds.
    Only the HTML page is redirected: the JSON API keeps the table's search.
    """
    if path != datasette.urls.table(DATABASE, TABLE):
        return None
    args = urllib.parse.parse_qsl(query_string.decode("utf-8", "replace"), keep_blank_values=True)
    searches = [value for key, value in args if key == "_search"]
    if not searches:
        return None
    text = next((value for value in searches if value.strip()), None)
    if text is None:
        # An empty box submitted: every paper, as if nothing had been typed (not "matches nothing").
        kept = [(key, value) for key, value in args if key != "_search"]
        return path + ("?" + urllib.parse.urlencode(kept) if kept else "")
    return datasette.urls.query(DATABASE, SEARCH_QUERY) + "?" + urllib.parse.urlencode({"q": text})


@hookimpl
def asgi_wrapper(datasette):
    def wrap(app):
        async def search_box(scope, receive, send):
            if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
                location = search_redirect(datasette, scope["path"], scope.get("query_string", b""))
                if location is not None:
                    await send({
                        "type": "http.response.start",
                        "status": 302,
                        "headers": [(b"location", location.encode("utf-8")), (b"content-type", b"text/plain; charset=utf-8")],
                    })
                    await send({"type": "http.response.body", "body": b""})
                    return
            return await app(scope, receive, send)

        return search_box

    return wrap


@hookimpl
def render_cell(value, column, table, database, datasette):
    """In query results, link arxiv_id to the paper's page and show snippet highlights."""
    if table is not None or not isinstance(value, str):
        return None
    if column == "arxiv_id" and value:
        # Row URLs tilde-encode the key: cond-mat/0102536 -> cond-mat~2F0102536.
        href = datasette.urls.row(database, "papers", tilde_encode(value))
        return Markup(f'<a href="{html.escape(href)}">{html.escape(value)}</a>')
    if column == "snippet":
        # Escape first: abstracts are plain text and may contain "<script>".
        return Markup(_MARKED.sub(r"<mark>\1</mark>", html.escape(value)))
    return None

"""Datasette plugin: the "next page" link of a paged canned query (by_category).

A paged query returns 100 rows and, on the last row of a full page, a `next_page` column
holding the `before` argument of the next page ("updated,arxiv_id"). Datasette shows a
relative link as plain text, so this renders that cell as a link to the same query with
`before` set and the row's `category` kept (the query's other parameter).

Loaded with `datasette --plugins-dir plugins`: imports only Datasette and the standard library.
"""

from __future__ import annotations

import urllib.parse

from datasette import hookimpl
from markupsafe import Markup, escape

# Columns of a paged query's rows that are also its parameters, carried to the next page.
KEPT_PARAMETERS = ("category",)


@hookimpl
def render_cell(row, value, column, table, database, datasette):
    if table is not None or column != "next_page" or not isinstance(value, str) or not value:
        return None
    arguments = {name: row[name] for name in KEPT_PARAMETERS if name in row.keys() and isinstance(row[name], str)}
    arguments["before"] = value
    return Markup(f'<a href="?{escape(urllib.parse.urlencode(arguments))}">next page</a>')

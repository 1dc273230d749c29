"""Datasette plugin: a "Related papers" list on each paper's page (/ai4mat/papers/<arxiv_id>).

The list comes from the `related` table (see harvest/related.py); templates/row-ai4mat-papers.html
shows it beside the paper's tags and links. Imports only Datasette and the standard library.
"""

from __future__ import annotations

from datasette import hookimpl
from datasette.utils import tilde_encode

ROW_TEMPLATE = "row-ai4mat-papers.html"
@hookimpl
def extra_template_vars(template, database, table, view_name, request, datasette):
    if view_name != "row" or table != "papers":
        return {}

    async def inner():
        arxiv_id = _row_key(request)
        if arxiv_id is None:
            return {"related_papers": []}
        db = datasette.get_database(database)
        if not await db.table_exists("related"):
            return {"related_papers": []}
        result = await db.execute(
            "select r.related_id, p.title, substr(p.published, 1, 4) as year from related r "
            "join papers p on p.arxiv_id = r.related_id where r.arxiv_id = ? order by r.rank",
            [arxiv_id],
        )
        return {
            "related_papers": [
                {
                    "related_id": row["related_id"], "title": row["title"], "year": row["year"],
                    "href": datasette.urls.row(database, "papers", tilde_encode(row["related_id"])),
                }
                for row in result.rows
            ],
            "related_query_href": datasette.urls.database(database) + "/related?arxiv_id=" + _quote(arxiv_id),
        }

    return inner


def _row_key(request) -> str | None:
    from datasette.utils import tilde_decode

    pks = request.url_vars.get("pks") if request is not None else None
    if not pks:
        return None
    return tilde_decode(pks)


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")

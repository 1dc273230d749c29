"""Datasette plugin: a paper's row page shows its tags, elements, formulas and links.

The page template (templates/row-ai4mat-papers.html) renders `paper_enrichment`, which this
hook reads from the enrichment tables. Loaded with `datasette --plugins-dir plugins`: imports
only Datasette and the standard library.
"""

from __future__ import annotations

from datasette import hookimpl
from datasette.utils import tilde_decode

KINDS = ("material", "method", "task")


def link_href(url: str) -> str:
    """An http(s) address for a link as written: bare hosts (aflowlib.org) get https://."""
    return url if url.lower().startswith(("http://", "https://")) else "https://" + url


@hookimpl
def extra_template_vars(view_name, table, database, request, datasette):
    if view_name != "row" or table != "papers" or request is None:
        return {}

    async def enrichment():
        arxiv_id = tilde_decode(request.url_vars.get("pks", ""))
        db = datasette.get_database(database)
        tables = set(await db.table_names())
        if not {"paper_tags", "paper_elements", "paper_formulas", "paper_links"} <= tables:
            return {"paper_enrichment": None}  # a file from before schema 2
        tags = await db.execute(
            "select kind, tag from paper_tags where arxiv_id = ? order by kind, mentions desc, tag", [arxiv_id]
        )
        elements = await db.execute("select element from paper_elements where arxiv_id = ? order by element", [arxiv_id])
        formulas = await db.execute("select as_written from paper_formulas where arxiv_id = ? order by rowid", [arxiv_id])
        links = await db.execute("select url, kind from paper_links where arxiv_id = ? order by position", [arxiv_id])
        return {
            "paper_enrichment": {
                "tags": [(kind, [row["tag"] for row in tags.rows if row["kind"] == kind]) for kind in KINDS],
                "elements": [row["element"] for row in elements.rows],
                "formulas": [row["as_written"] for row in formulas.rows],
                "links": [{"url": row["url"], "kind": row["kind"], "href": link_href(row["url"])} for row in links.rows],
            }
        }

    return enrichment

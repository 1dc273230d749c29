"""Datasette plugin: canned queries that list papers read as a list of papers, and JSON-array cells as lists.

The templates query-ai4mat-<query>.html (all extending _ai4mat_paper_list.html) call
`ai4mat_paper_list(rows)` for the query's rows, which gives each paper its row page, shortened
authors, date, category, tags, snippet or the abstract's first lines and its arXiv, PDF, code and
data links. What a query's SQL does not return (abstract, PDF, tags, code links) is read in one
statement for the whole page, by arxiv_id. The page is only HTML: `.json`, `.csv` and the other
renderers answer exactly as before, and `?_table=1` shows Datasette's own table.

`render_cell` shows the JSON-array columns of tables (papers.authors, papers.categories, the same
in versions, and any column whose description calls it "a JSON array") as lists of links.

Loaded with `datasette --plugins-dir plugins`: imports only Datasette and the standard library.
"""

from __future__ import annotations

import functools
import html
import json
import re
import urllib.parse

from datasette import hookimpl
from datasette.database import QueryInterrupted
from datasette.utils import path_with_added_args, path_with_removed_args, tilde_encode, to_css_class
from markupsafe import Markup, escape

# The canned queries shown as paper lists.
LIST_QUERIES = (
    "new_today", "new_this_week", "search", "by_author", "by_category", "by_tag", "by_elements", "with_code", "related",
)
# Query -> (its Atom feed's canned query, the page's parameter, the feed's parameter).
FEEDS = {
    "search": ("feed_search", "q", "q"),
    "by_author": ("feed_author", "name", "name"),
    "by_category": ("feed_category", "category", "category"),
    "by_tag": ("feed_tag", "tags", "tag"),
}
# Parameters that page through a query: a new search from the page's form starts at page 1.
PAGING_PARAMETERS = ("before",)
TABLE_ARGUMENT = "_table"
PARAMETER_LABELS = {
    "name": "Author", "category": "Category", "tags": "Tags", "tag": "Tag", "elements": "Elements", "arxiv_id": "arXiv id",
}
AUTHORS_SHOWN = 3  # then "et al." and the count; a list of AUTHORS_SHOWN + 1 is shown whole
ABSTRACT_CHARACTERS = 320
TAGS_SHOWN = 6
LINK_CHARACTERS = 48
_MARKED = re.compile(r"\*\*(.+?)\*\*", re.S)


def list_query(template: str, database: str | None) -> str | None:
    """The list query a template renders (query-<db>-<query>.html), or None."""
    if not database or not template.startswith("query-"):
        return None
    for query in LIST_QUERIES:
        if template == f"query-{to_css_class(database)}-{to_css_class(query)}.html":
            return query
    return None


def shortened_authors(names: list[str], count: int) -> tuple[list[str], int]:
    """(names to show, how many are left out): all of a short list, else the first AUTHORS_SHOWN."""
    if count <= AUTHORS_SHOWN + 1:
        return names[:count], 0
    return names[:AUTHORS_SHOWN], count - AUTHORS_SHOWN


def abstract_start(text: str | None, limit: int = ABSTRACT_CHARACTERS) -> str:
    """The abstract's first `limit` characters, cut at a word and ended with … when cut."""
    text = " ".join((text or "").split())
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip(" ,;:.") + "…"


def marked_snippet(snippet: str) -> Markup:
    """A search snippet (matches between **) as HTML: escaped text, matches in <mark>."""
    return Markup(_MARKED.sub(r"<mark>\1</mark>", html.escape(" ".join(snippet.split()))))


def link_href(url: str) -> str:
    """An http(s) address for a link as written: bare hosts (aflowlib.org) get https://."""
    return url if url.lower().startswith(("http://", "https://")) else "https://" + url


def link_label(url: str, limit: int = LINK_CHARACTERS) -> str:
    """A short name for a link: its host and path without the scheme, cut to `limit` characters with …."""
    label = re.sub(r"^https?://(www\.)?", "", url, flags=re.I).rstrip("/")
    return label if len(label) <= limit else label[: limit - 1] + "…"


def paper_item(paper: dict) -> Markup:
    """One paper of a list page as its <li>, from the dict paper_list builds.

    Written here, not in _ai4mat_paper_list.html: Datasette renders templates with async Jinja,
    where the 50 items of a search page took about 14 ms of its 62 at a million papers.
    """
    e = escape
    title = f'<span class="rank">{e(paper["rank"])}.</span> ' if paper["rank"] is not None else ""
    meta = ""
    if paper["status"]:
        version = f' v{e(paper["version"])}' if paper["status"] == "updated" and paper["version"] else ""
        meta += f'<span class="status status-{e(to_css_class(paper["status"]))}">{e(paper["status"])}{version}</span> '
    names = []
    for author in paper["authors"]:
        named = ' class="named-author"' if author["named"] else ""
        names.append(f'{"… " if author.get("gap") else ""}<a href="{e(author["href"])}"{named}>{e(author["name"])}</a>')
    meta += '<span class="authors">' + ", ".join(names)
    if paper["authors_left_out"]:
        meta += f'{" et al." if paper["et_al"] else ""} <span class="more">({paper["author_count"]:,} authors)</span>'
    meta += "</span>"
    if paper["date"]:
        meta += f' <span class="sep">·</span> <time datetime="{e(paper["date"])}">{e(paper["date"])}</time>'
        if paper["version"] and paper["version"] > 1 and paper["status"] != "updated":
            meta += f' (v{e(paper["version"])})'
    if paper["category"]:
        meta += f' <span class="sep">·</span> <a class="category" href="{e(paper["category_href"])}">{e(paper["category"])}</a>'
    if paper["score"] is not None:
        meta += f' <span class="sep">·</span> similarity {paper["score"]:.2f}'
    parts = [
        f'  <li class="paper" data-arxiv-id="{e(paper["arxiv_id"])}">\n',
        f'    <h2 class="paper-title">{title}<a href="{e(paper["href"])}">{e(paper["title"])}</a></h2>\n',
        f'    <p class="paper-meta">{meta}</p>\n',
    ]
    if paper["tags"]:
        tags = "".join(f'<a class="tag" href="{e(tag["href"])}">{e(tag["name"])}</a> ' for tag in paper["tags"])
        more = f'<span class="more">+{e(paper["tags_left_out"])} more</span>' if paper["tags_left_out"] else ""
        parts.append(f'    <p class="paper-tags">{tags}{more}</p>\n')
    if paper["elements"] or paper["formulas"]:
        chemistry = f'Elements: <span class="elements">{e(paper["elements"])}</span>' if paper["elements"] else ""
        if paper["elements"] and paper["formulas"]:
            chemistry += ' <span class="sep">·</span> '
        if paper["formulas"]:
            chemistry += f'Formulas: <span class="formulas">{e(paper["formulas"])}</span>'
        parts.append(f'    <p class="paper-chemistry">{chemistry}</p>\n')
    if paper["snippet"]:
        parts.append(f'    <p class="paper-text snippet">{e(paper["snippet"])}</p>\n')
    elif paper["abstract"]:
        parts.append(f'    <p class="paper-text abstract">{e(paper["abstract"])}</p>\n')
    links = "".join(f' <a class="code-link" href="{e(link["href"])}" rel="nofollow">code: {e(link["label"])}</a>' for link in paper["code"])
    links += "".join(f' <a class="data-link" href="{e(link["href"])}" rel="nofollow">data: {e(link["label"])}</a>' for link in paper["data"])
    parts.append(
        f'    <p class="paper-links">\n      <a class="abs-link" href="{e(paper["abs_url"])}">arXiv:{e(paper["arxiv_id"])}</a>\n'
        f'      <a class="pdf-link" href="{e(paper["pdf_url"])}">PDF</a>{links}\n    </p>\n  </li>\n'
    )
    return Markup("".join(parts))


# One statement per page: what each listed paper's row does not carry. `page` is a JSON array
# of [arxiv_id, version or null]; authors and abstract are the listed version's when known.
PAGE_DETAILS_SQL = """
with page as (
  select json_extract(value, '$[0]') as arxiv_id, json_extract(value, '$[1]') as version
  from json_each(:page)
)
select
  p.arxiv_id,
  substr(coalesce(v.summary, p.summary), 1, {abstract}) as abstract,
  (select json_group_array(value) from (
     select value from json_each(coalesce(v.authors, p.authors)) where key < {authors}
  )) as first_authors,
  json_array_length(coalesce(v.authors, p.authors)) as author_count,
  (select json_array(key, value) from json_each(coalesce(v.authors, p.authors))
   where lower(value) = lower(:named) order by key limit 1) as named_author,
  p.primary_category,
  p.abs_url,
  p.pdf_url,
  p.published,
  p.updated,
  {tags} as tags,
  {links} as links
from page
join papers p on p.arxiv_id = page.arxiv_id
left join versions v on v.arxiv_id = page.arxiv_id and v.version = page.version
"""
TAGS_SQL = (
    "(select json_group_array(tag) from (select tag from paper_tags t where t.arxiv_id = p.arxiv_id "
    "order by t.in_title desc, t.mentions desc, t.tag))"
)
LINKS_SQL = (
    "(select json_group_array(json_array(kind, url)) from (select kind, url from paper_links l "
    "where l.arxiv_id = p.arxiv_id and l.kind in ('code', 'data', 'model') order by l.position))"
)


async def page_details(db, ids: list[tuple[str, int | None]], named: str = "") -> dict[str, dict] | None:
    """arxiv_id -> the details PAGE_DETAILS_SQL reads, for the papers of one page (and where `named`
    is among its authors); None when the request's SQL time ran out first."""
    if not ids:
        return {}
    tables = set(await db.table_names())
    sql = PAGE_DETAILS_SQL.format(
        abstract=ABSTRACT_CHARACTERS * 2,
        authors=AUTHORS_SHOWN + 1,
        tags=TAGS_SQL if "paper_tags" in tables else "'[]'",
        links=LINKS_SQL if "paper_links" in tables else "'[]'",
    )
    try:
        result = await db.execute(sql, {"page": json.dumps([list(key) for key in ids]), "named": named})
    except QueryInterrupted:
        # The query's own rows used up the request's time limit (they share one): the list
        # is still shown, from the rows alone, rather than an error page.
        return None
    return {row["arxiv_id"]: dict(row) for row in result.rows}


def _value(row, column: str):
    return row[column] if column in row.keys() else None


def _query_href(datasette, database: str, query: str, **arguments) -> str:
    return _query_path(datasette, database, query) + "?" + urllib.parse.urlencode(arguments)


@functools.lru_cache(maxsize=256)
def _query_path(datasette, database: str, query: str) -> str:
    # Built once per query: a list page links ~230 authors, tags and categories. A plain str:
    # Datasette's PrefixedUrlString calls dir(str) on every method call (html.escape makes five),
    # which took ~50 ms of a papers page of 100 rows at a million papers.
    return str(datasette.urls.query(database, query))


async def paper_list(datasette, database: str, query: str, request, rows) -> dict:
    """The template's view of a page of `query`'s rows: {"papers": [...], "next_href": ...}."""
    db = datasette.get_database(database)
    ids = []
    for row in rows:
        arxiv_id = _value(row, "arxiv_id") or _value(row, "related_id")
        if isinstance(arxiv_id, str):
            version = _value(row, "version")
            ids.append((arxiv_id, version if isinstance(version, int) else None))
    # On an author's page, that author is shown even when past the first names.
    named = (request.args.get("name") or "").strip() if query == "by_author" and request is not None else ""
    details = await page_details(db, ids, named)
    complete = details is not None
    details = details or {}
    papers = []
    for row in rows:
        arxiv_id = _value(row, "arxiv_id") or _value(row, "related_id")
        if not isinstance(arxiv_id, str):
            continue
        more = details.get(arxiv_id, {})
        first_authors = json.loads(more.get("first_authors") or "[]")
        author_count = more.get("author_count") or len(first_authors)
        shown, left_out = shortened_authors(first_authors, author_count)
        et_al = left_out > 0  # names left out after the last one shown
        authors = [{"name": name, "href": _query_href(datasette, database, "by_author", name=name), "named": False} for name in shown]
        if more.get("named_author"):
            position, name = json.loads(more["named_author"])
            if position < len(shown):
                authors[position]["named"] = True
            else:
                authors.append({"name": name, "href": _query_href(datasette, database, "by_author", name=name), "named": True, "gap": position > len(shown)})
                left_out -= 1
                et_al = position < author_count - 1
        primary = _value(row, "primary_category") or more.get("primary_category")
        tags = json.loads(more.get("tags") or "[]")
        if not tags and isinstance(_value(row, "tags"), str):
            tags = [tag.strip() for tag in row["tags"].split(",") if tag.strip()]
        links = json.loads(more.get("links") or "[]")
        code = [url for kind, url in links if kind == "code"]
        data = [url for kind, url in links if kind != "code"]
        if isinstance(_value(row, "code"), str):  # with_code gives its links itself
            code = row["code"].split()
            data = (_value(row, "data") or "").split()
        snippet = _value(row, "snippet")
        version = _value(row, "version")
        date = _value(row, "updated") or _value(row, "published") or more.get("updated") or more.get("published")
        score = _value(row, "score")
        papers.append({
            "arxiv_id": arxiv_id,
            "href": str(datasette.urls.row(database, "papers", tilde_encode(arxiv_id))),  # plain str: see _query_href
            "title": " ".join((_value(row, "title") or arxiv_id).split()),
            "version": version if isinstance(version, int) else None,
            "status": _value(row, "status"),
            "rank": _value(row, "rank"),
            "score": round(score, 2) if isinstance(score, float) else None,
            "authors": authors,
            "authors_left_out": left_out,
            "et_al": et_al,
            "author_count": author_count,
            "date": date[:10] if isinstance(date, str) else None,
            "category": primary,
            "category_href": _query_href(datasette, database, "by_category", category=primary) if primary else None,
            "tags": [{"name": tag, "href": _query_href(datasette, database, "by_tag", tags=tag)} for tag in tags[:TAGS_SHOWN]],
            "tags_left_out": max(0, len(tags) - TAGS_SHOWN),
            "elements": _value(row, "elements"),
            "formulas": _value(row, "formulas"),
            "snippet": marked_snippet(snippet) if isinstance(snippet, str) and snippet.strip() else None,
            "abstract": abstract_start(more.get("abstract")),
            "abs_url": _value(row, "link") or more.get("abs_url") or f"https://arxiv.org/abs/{arxiv_id}",
            "pdf_url": more.get("pdf_url") or f"https://arxiv.org/pdf/{arxiv_id}",
            "code": [{"href": link_href(url), "label": link_label(url)} for url in code],
            "data": [{"href": link_href(url), "label": link_label(url)} for url in data],
        })
        papers[-1]["html"] = paper_item(papers[-1])
    subject = None
    if query == "related" and request is not None and (request.args.get("arxiv_id") or "").strip():
        subject_id = request.args["arxiv_id"].strip()
        try:
            found = (await db.execute("select title from papers where arxiv_id = ?", [subject_id])).rows
        except QueryInterrupted:
            found = []
        if found:
            subject = {
                "arxiv_id": subject_id, "title": " ".join((found[0]["title"] or subject_id).split()),
                "href": datasette.urls.row(database, "papers", tilde_encode(subject_id)),
            }
    first = rows[0] if rows else None
    counted = first is not None and "category_papers" in first.keys()
    return {
        "papers": papers,
        "complete": complete,
        "subject": subject,
        "next_href": _next_href(rows, request) or await _next_href_by_updated(datasette, database, query, rows, request),
        "category": _value(first, "category") if counted else None,
        "category_papers": _value(first, "category_papers") if counted else None,
    }


def _next_href(rows, request) -> str | None:
    """The next page of a paged query (its last row's next_page is the next `before`)."""
    if not rows or "next_page" not in rows[-1].keys() or not rows[-1]["next_page"]:
        return None
    arguments = [
        (key, value) for key, value in urllib.parse.parse_qsl(request.query_string, keep_blank_values=True)
        if key not in PAGING_PARAMETERS
    ]
    return "?" + urllib.parse.urlencode(arguments + [("before", rows[-1]["next_page"])])


async def _next_href_by_updated(datasette, database: str, query: str, rows, request) -> str | None:
    """The next page of a full page of a query keyed by `before` = "updated,arxiv_id" of the last
    row seen (new_today: a first harvest's 1,450 papers are more than a page of 1,000)."""
    if request is None or not rows or len(rows) < datasette.setting("max_returned_rows"):
        return None
    canned = await datasette.get_canned_query(database, query, getattr(request, "actor", None))
    last = rows[-1]
    if not canned or ":before" not in canned.get("sql", "") or not {"updated", "arxiv_id"} <= set(last.keys()):
        return None
    arguments = [
        (key, value) for key, value in urllib.parse.parse_qsl(request.query_string, keep_blank_values=True)
        if key not in PAGING_PARAMETERS
    ]
    return "?" + urllib.parse.urlencode(arguments + [("before", f"{last['updated'] or ''},{last['arxiv_id']}")])


async def list_page(datasette, database: str, query: str, request) -> dict:
    """What a list page shows besides its papers: its feed, the table and list views."""
    feed = None
    if query in FEEDS and request is not None:
        feed_query, page_parameter, feed_parameter = FEEDS[query]
        value = (request.args.get(page_parameter) or "").strip()
        actor = getattr(request, "actor", None)
        if value and await datasette.get_canned_query(database, feed_query, actor):
            feed = datasette.urls.path(
                datasette.urls.database(database) + f"/{feed_query}.atom?" + urllib.parse.urlencode({feed_parameter: value})
            )
    as_table = request is not None and bool(request.args.get(TABLE_ARGUMENT))
    return {
        "query": query,
        "feed_href": feed,
        "as_table": as_table,
        "table_href": path_with_added_args(request, {TABLE_ARGUMENT: "1"}) if request is not None else None,
        "list_href": path_with_removed_args(request, {TABLE_ARGUMENT}) if request is not None else None,
        "hidden_parameters": PAGING_PARAMETERS,
        "labels": PARAMETER_LABELS,
    }


def facets_open(arguments) -> bool:
    """Whether a table page shows its facets unfolded: when the URL asks for a facet or filters."""
    return any(key.startswith("_facet") or not key.startswith("_") for key in arguments)


@hookimpl
def extra_template_vars(template, database, table, view_name, request, datasette):
    if view_name == "table" and table is not None:
        return {"ai4mat_facets_open": request is not None and facets_open(request.args.keys())}
    query = list_query(template, database)
    if query is None:
        return {}

    async def inner():
        async def rows_as_papers(rows):
            return await paper_list(datasette, database, query, request, rows)

        return {"ai4mat_list": await list_page(datasette, database, query, request), "ai4mat_paper_list": rows_as_papers}

    return inner


# ------------------------------------------------------------------ JSON-array cells of tables

# Column -> (the canned query listing the papers of one value, its parameter).
LIST_COLUMNS = {"authors": ("by_author", "name"), "categories": ("by_category", "category")}
LIST_TABLES = ("papers", "versions")
ITEMS_SHOWN = 10  # the rest of a long list (a 500-author paper) behind a click


def json_list(value) -> list[str] | None:
    """The strings of a JSON array of strings, or None for anything else."""
    if not isinstance(value, str) or not value.startswith("["):
        return None
    try:
        items = json.loads(value)
    except ValueError:
        return None
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        return None
    return items


def list_cell(items: list[str], href=None) -> Markup:
    """`items` as an inline list, each linked by `href(item)` when given; past ITEMS_SHOWN behind a <details>."""

    def item(text: str) -> str:
        inner = html.escape(text)
        if href is not None:
            inner = f'<a href="{html.escape(href(text))}">{inner}</a>'
        return f"<li>{inner}</li>"

    shown = "".join(item(text) for text in items[:ITEMS_SHOWN])
    rest = items[ITEMS_SHOWN:]
    more = ""
    if rest:
        more = (
            f'<details class="cell-list-more"><summary>{len(rest):,} more</summary>'
            f'<ul class="cell-list">{"".join(item(text) for text in rest)}</ul></details>'
        )
    return Markup(f'<ul class="cell-list">{shown}</ul>{more}')


def _described_as_json_array(datasette, database: str, table: str, column: str) -> bool:
    description = ((datasette.table_metadata(database, table) or {}).get("columns") or {}).get(column)
    return isinstance(description, str) and "json array" in description.lower()


@hookimpl
def render_cell(value, column, table, database, datasette):
    if table is None or not isinstance(value, str) or not value.startswith("["):
        return None
    if not (table in LIST_TABLES and column in LIST_COLUMNS) and not _described_as_json_array(datasette, database, table, column):
        return None
    items = json_list(value)
    if items is None:
        return None
    target = LIST_COLUMNS.get(column) if table in LIST_TABLES else None
    href = None
    if target is not None:
        query, parameter = target
        href = lambda text: _query_href(datasette, database, query, **{parameter: text})  # noqa: E731
    return list_cell(items, href)

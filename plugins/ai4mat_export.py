"""Datasette plugin: BibTeX (`.bib`) and RIS (`.ris`) exports of any page that lists papers.

A page whose rows carry an `arxiv_id` column (the papers and versions tables, every canned query
that lists papers, a SQL query) exports one entry per paper, in the page's order. Each paper's
full record is read from `papers` in one query, so an export carries full metadata even when the
page shows few columns. Loaded with `datasette --plugins-dir plugins`: it imports only Datasette
and the standard library.
"""

from __future__ import annotations

import json
import re
import unicodedata

from datasette import hookimpl
from datasette.utils.asgi import Response

PAPER_COLUMNS = (
    "arxiv_id", "version", "title", "summary", "authors", "primary_category", "published",
    "updated", "comment", "journal_ref", "doi",
)
# One query for the whole page: the ids travel as one JSON parameter, so no 999-variable limit.
PAPERS_SQL = (
    "select " + ", ".join(PAPER_COLUMNS) + " from papers"
    " where arxiv_id in (select value from json_each(:arxiv_ids))"
)
NO_PAPERS = (
    "This page has no arxiv_id column, so it lists no papers to export as {format}. "
    "Export a page that lists papers instead, such as /{database}/papers.{extension} "
    "or /{database}/new_today.{extension}.\n"
)
NO_PAPERS_TABLE = "The database {database} has no papers table to export {format} from.\n"

# ---------------------------------------------------------------- plain text

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # Unicode category Cc; whitespace is gone before


def one_line(text) -> str:
    """`text` with every run of whitespace (newlines, tabs, U+2028 ...) as one space, and
    without control characters: every field of either format is one line of text."""
    if text is None:
        return ""
    return _CONTROL.sub("", " ".join(str(text).split()))


def authors_of(value) -> list[str]:
    """The authors column (a JSON array of names) as a list; anything else as one name."""
    if value is None:
        return []
    try:
        names = json.loads(value)
    except (TypeError, ValueError):
        names = [value]
    if not isinstance(names, list):
        names = [names]
    return [name for name in (one_line(n) for n in names if n is not None) if name]


# ---------------------------------------------------------------- BibTeX

# arXiv titles are written in TeX: $...$ is math, \hbox and \"o are commands. Those are kept;
# characters that would break LaTeX as plain text (& % # _ ~ ^ and a lone $ or \) are escaped.
_BIBTEX_TOKEN = re.compile(
    r"(?P<math>\$\$[^$]+\$\$|\$[^$]+\$)"
    r"|(?P<command>\\(?:[A-Za-z]+|[^A-Za-z]))"
    r"|(?P<backslash>\\)"
    r"|(?P<special>[&%#_$~^])"
    r"|(?P<brace>[{}])"
    r"|(?P<text>[^\\$&%#_~^{}]+)"
)
_SPECIALS = {
    "&": r"\&", "%": r"\%", "#": r"\#", "_": r"\_", "$": r"\$",
    "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
}
_TEXT_BRACE = {"{": r"\textbraceleft{}", "}": r"\textbraceright{}"}
_MATH_BRACE = {"{": r"\lbrace{}", "}": r"\rbrace{}"}


def _unmatched_braces(text: str) -> set[int]:
    """Positions of the braces without a partner. BibTeX counts every brace, escaped or not,
    to find a field's end, so one of these would end the field early or swallow the entry."""
    opened, unmatched = [], set()
    for position, ch in enumerate(text):
        if ch == "{":
            opened.append(position)
        elif ch == "}":
            if opened:
                opened.pop()
            else:
                unmatched.add(position)
    return unmatched | set(opened)


def _replace_braces(text: str, start: int, unmatched: set[int], replacement: dict) -> str:
    """`text` (found at `start`) with each unmatched brace, escaped or not, spelled as a command."""
    out, position = [], 0
    while position < len(text):
        ch = text[position]
        if ch == "\\" and position + 1 < len(text) and start + position + 1 in unmatched:
            out.append(replacement[text[position + 1]])
            position += 2
            continue
        if start + position in unmatched:
            out.append(replacement[ch])
        else:
            out.append(ch)
            if ch == "\\" and position + 1 < len(text):  # keep the command's next character
                out.append(text[position + 1])
                position += 1
        position += 1
    return "".join(out)


def bibtex_text(value) -> str:
    """`value` as the content of a braced BibTeX field: one line, braces balanced, TeX math and
    commands kept, LaTeX's special characters escaped, other characters (accents) as UTF-8."""
    text = one_line(value)
    unmatched = _unmatched_braces(text)
    out = []
    for match in _BIBTEX_TOKEN.finditer(text):
        kind, token, start = match.lastgroup, match.group(), match.start()
        if kind == "math":
            out.append(_replace_braces(token, start, unmatched, _MATH_BRACE))
        elif kind == "command":
            out.append(_replace_braces(token, start, unmatched, _TEXT_BRACE))
        elif kind == "backslash":
            out.append(r"\textbackslash{}")
        elif kind == "special":
            out.append(_SPECIALS[token])
        elif kind == "brace":
            out.append(_TEXT_BRACE[token] if start in unmatched else token)
        else:
            out.append(token)
    return "".join(out)


def bibtex_verbatim(value) -> str:
    """A DOI or URL for a verbatim field (biblatex prints doi, url, eprint as they are): one line,
    without the braces and backslashes that could end the field."""
    return re.sub(r"[{}\\\s]", "", one_line(value))


def bibtex_name(name: str) -> str:
    """One author for an `and` list. A name containing "and" or a comma would be split or read
    as "Last, First" by BibTeX, so it is braced whole."""
    text = bibtex_text(name)
    if "," in text or re.search(r"\band\b", text, re.IGNORECASE):
        return "{" + text + "}"
    return text


_STOP_WORDS = frozenset("a an the on of in for to and with from at by via towards toward is are".split())
_NAME_SUFFIXES = frozenset("jr sr ii iii iv".split())


def _ascii_words(text: str) -> list[str]:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    return re.findall(r"[a-z0-9]+", folded)


def citation_key(paper: dict) -> str:
    """arXiv's key form: first author's surname, year of version 1, first significant title word,
    ASCII-folded (Gómez-Bombarelli 2019 "Automatic ..." -> gomezbombarelli2019automatic).
    The year is version 1's, so a new version does not change the key."""
    authors = authors_of(paper.get("authors"))
    surname = ""
    if authors:
        tokens = [t for t in authors[0].split() if "".join(_ascii_words(t)) not in _NAME_SUFFIXES]
        surname = "".join(_ascii_words(tokens[-1])) if tokens else ""
    title = re.sub(r"\$[^$]*\$|\\[A-Za-z]+", " ", one_line(paper.get("title")))
    words = [w for w in _ascii_words(title) if w not in _STOP_WORDS and not w.isdigit()]
    return f"{surname or 'anonymous'}{year_of(paper)}{words[0] if words else ''}"


def year_of(paper: dict) -> str:
    stamp = paper.get("published") or paper.get("updated") or ""
    return stamp[:4] if re.match(r"\d{4}", stamp) else ""


def unique_keys(papers: list[dict]) -> list[str]:
    """A key per paper, unique within the export: papers sharing a key are told apart by a, b, c
    in arxiv_id order (the lowest keeps the bare key), so the same papers get the same keys
    whatever order the page lists them in."""
    keys = [citation_key(paper) for paper in papers]
    by_key: dict[str, list[int]] = {}
    for index, key in enumerate(keys):
        by_key.setdefault(key, []).append(index)
    for key, indexes in by_key.items():
        if len(indexes) > 1:
            ordered = sorted(indexes, key=lambda i: papers[i]["arxiv_id"])
            for n, index in enumerate(ordered[1:]):
                keys[index] = key + _suffix(n)
    return keys


def _suffix(n: int) -> str:
    letters = ""
    n += 1
    while n:
        n, rest = divmod(n - 1, 26)
        letters = chr(ord("a") + rest) + letters
    return letters


def bibtex_entry(paper: dict, key: str) -> str:
    """One @misc entry with the eprint fields arXiv recommends (archivePrefix, eprint,
    primaryClass; arxiv.org/help/hypertex/bibstyles), plus doi and journal_ref (as note) when
    the authors gave them."""
    fields = [
        ("title", bibtex_text(paper.get("title"))),
        ("author", " and ".join(bibtex_name(n) for n in authors_of(paper.get("authors")))),
        ("year", year_of(paper)),
        ("eprint", bibtex_verbatim(paper["arxiv_id"])),
        ("archivePrefix", "arXiv"),
        ("primaryClass", bibtex_verbatim(paper.get("primary_category"))),
        ("doi", bibtex_verbatim(paper.get("doi"))),
        ("note", bibtex_text(paper.get("journal_ref"))),
        ("url", "https://arxiv.org/abs/" + bibtex_verbatim(paper["arxiv_id"])),
    ]
    lines = [f"@misc{{{key},"] + [f"  {name}={{{value}}}," for name, value in fields if value]
    return "\n".join(lines) + "\n}\n"


def render_bibtex(papers: list[dict]) -> str:
    return "\n".join(bibtex_entry(p, k) for p, k in zip(papers, unique_keys(papers)))


# ---------------------------------------------------------------- RIS


def ris_record(paper: dict) -> list[tuple[str, str]]:
    """One RIS record as (tag, value) pairs: GEN for a preprint, JOUR with the journal reference
    in T2 once published. Authors are as arXiv lists them ("First Last")."""
    journal_ref = one_line(paper.get("journal_ref"))
    published = paper.get("published") or ""
    tags = [("TY", "JOUR" if journal_ref else "GEN"), ("ID", paper["arxiv_id"])]
    tags += [("AU", name) for name in authors_of(paper.get("authors"))]
    tags += [
        ("TI", paper.get("title")),
        ("PY", year_of(paper)),
        ("DA", published[:10].replace("-", "/") if re.match(r"\d{4}-\d\d-\d\d", published) else ""),
        ("T2", journal_ref),
        ("DO", paper.get("doi")),
        ("UR", "https://arxiv.org/abs/" + paper["arxiv_id"]),
        ("DB", "arXiv"),
        ("AN", f"arXiv:{paper['arxiv_id']}v{paper['version']}" if paper.get("version") else ""),
        ("AB", paper.get("summary")),
        ("N1", paper.get("comment")),
    ]
    return [(tag, one_line(value)) for tag, value in tags if one_line(value)] + [("ER", "")]


def render_ris(papers: list[dict]) -> str:
    # One line per tag, values on a single line, so nothing in a value (not even "\nER  - ")
    # can start a tag. CRLF as the RIS specification asks; parsers accept LF too.
    lines = []
    for paper in papers:
        lines += [f"{tag}  - {value}" for tag, value in ris_record(paper)]
        lines.append("")
    return "\r\n".join(lines)


# ---------------------------------------------------------------- Datasette


def _arxiv_ids(columns: list[str], rows) -> list[str]:
    """The page's distinct arxiv_ids in page order (a versions page lists a paper once per version)."""
    index = columns.index("arxiv_id")
    seen = {}
    for row in rows:
        value = row[index]
        if isinstance(value, dict):  # a foreign key expanded with _labels=on
            value = value.get("value")
        if value:
            seen.setdefault(str(value), None)
    return list(seen)


def _filename(name, extension: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name or "papers")).strip("._") or "papers"
    return f"{stem}.{extension}"


def _bad_request(message: str) -> dict:
    return {"body": message, "status_code": 400, "content_type": "text/plain; charset=utf-8"}


def _renderer(format_name: str, extension: str, content_type: str, render):
    async def render_page(datasette, columns, rows, database, table, query_name, view_name):
        # A dict, not a Response: Datasette 0.65 overrides a Response's status with the page's 200.
        if "arxiv_id" not in columns:
            return _bad_request(NO_PAPERS.format(format=format_name, database=database, extension=extension))
        db = datasette.get_database(database)
        if not await db.table_exists("papers"):
            return _bad_request(NO_PAPERS_TABLE.format(database=database, format=format_name))
        arxiv_ids = _arxiv_ids(columns, rows)
        result = await db.execute(PAPERS_SQL, {"arxiv_ids": json.dumps(arxiv_ids)})
        by_id = {row["arxiv_id"]: dict(row) for row in result.rows}
        papers = [by_id[arxiv_id] for arxiv_id in arxiv_ids if arxiv_id in by_id]
        # One paper's page downloads as its id (cond-mat/0102536 -> cond-mat_0102536.bib).
        name = arxiv_ids[0] if view_name == "row" and len(arxiv_ids) == 1 else query_name or table or database
        return Response(
            render(papers),
            content_type=content_type,
            headers={
                "content-disposition": f'attachment; filename="{_filename(name, extension)}"'
            },
        )

    def can_render(columns):
        return "arxiv_id" in columns

    return {"extension": extension, "render": render_page, "can_render": can_render}


SKIP_COUNT_AND_FACETS = b"_nocount=1&_nofacet=1"


@hookimpl
def asgi_wrapper(datasette):
    """Ask table pages exported as .bib or .ris not to count every row nor compute facets:
    an export uses neither, and at 1M papers they take 2 s of a 2.1 s export (benchmarks/export.py)."""

    def wrap(app):
        async def skip_counts(scope, receive, send):
            if scope["type"] == "http" and scope["path"].endswith((".bib", ".ris")):
                query = scope.get("query_string", b"")
                scope = {**scope, "query_string": query + b"&" + SKIP_COUNT_AND_FACETS if query else SKIP_COUNT_AND_FACETS}
            return await app(scope, receive, send)

        return skip_counts

    return wrap


@hookimpl
def register_output_renderer(datasette):
    return [
        _renderer("BibTeX", "bib", "application/x-bibtex; charset=utf-8", render_bibtex),
        _renderer("RIS", "ris", "application/x-research-info-systems; charset=utf-8", render_ris),
    ]

"""The enrich layer: what each paper is about, derived from its stored title, abstract and comment.

`enrich_paper` is pure (a paper's text in, rows out); `enrich_papers` replaces the rows of some
papers in paper_links, paper_elements, paper_formulas, paper_tags and paper_enrichment, inside
the caller's transaction, and keeps `tag_vocabulary` (the rules that made the tags, which search
matches queries with) at the vocabulary used. Everything here is recomputable from `papers` alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

import sqlite_utils

from .chemistry import paper_chemistry
from .links import code_available_no_url, host_of, paper_links
from .tags import Vocabulary, default_vocabulary, paper_tags

ENRICH_TABLES = ("paper_links", "paper_elements", "paper_formulas", "paper_tags", "paper_enrichment")


@dataclass
class EnrichedRows:
    """The rows of one paper in each enrichment table, as tuples in column order."""

    links: list[tuple]
    elements: list[tuple]
    formulas: list[tuple]
    tags: list[tuple]
    enrichment: tuple


def enrich_paper(arxiv_id: str, version: int, title: str | None, summary: str | None, comment: str | None,
                 vocabulary: Vocabulary, updated: str | None = None) -> EnrichedRows:
    """Every enrichment row of one paper version; no I/O. `updated` (the version's time) is copied
    into tag and element rows so by_tag and by_elements read them newest first from an index."""
    links = paper_links(summary, comment)
    formulas, elements = paper_chemistry(title, summary, comment)
    tags = paper_tags(title, summary, comment, vocabulary)
    return EnrichedRows(
        links=[(arxiv_id, position, link.url, link.kind, host_of(link.url), link.found_in) for position, link in enumerate(links)],
        elements=[(arxiv_id, element, updated) for element in elements],
        formulas=[(arxiv_id, formula.formula, formula.as_written, formula.kind, " ".join(formula.elements)) for formula in formulas],
        tags=[(arxiv_id, tag.kind, tag.tag, tag.mentions, int(tag.in_title), vocabulary.version, updated) for tag in tags],
        enrichment=(arxiv_id, version, vocabulary.version, int(code_available_no_url(summary, comment, links))),
    )


_INSERTS = {
    "paper_links": "INSERT INTO paper_links (arxiv_id, position, url, kind, host, found_in) VALUES (?, ?, ?, ?, ?, ?)",
    "paper_elements": "INSERT INTO paper_elements (arxiv_id, element, updated) VALUES (?, ?, ?)",
    "paper_formulas": "INSERT INTO paper_formulas (arxiv_id, formula, as_written, kind, elements) VALUES (?, ?, ?, ?, ?)",
    "paper_tags": (
        "INSERT INTO paper_tags (arxiv_id, kind, tag, mentions, in_title, vocabulary_version, updated) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)"
    ),
    "paper_enrichment": "INSERT INTO paper_enrichment (arxiv_id, version, vocabulary_version, code_available_no_url) VALUES (?, ?, ?, ?)",
}


def store_rows(db: sqlite_utils.Database, arxiv_ids: list[str], rows: Iterable[EnrichedRows]) -> None:
    """Replace the enrichment rows of `arxiv_ids` with `rows`; inside the caller's transaction."""
    ids = [(arxiv_id,) for arxiv_id in arxiv_ids]
    for table in ENRICH_TABLES:
        db.conn.executemany(f"DELETE FROM {table} WHERE arxiv_id = ?", ids)
    rows = list(rows)
    db.conn.executemany(_INSERTS["paper_links"], [row for paper in rows for row in paper.links])
    db.conn.executemany(_INSERTS["paper_elements"], [row for paper in rows for row in paper.elements])
    db.conn.executemany(_INSERTS["paper_formulas"], [row for paper in rows for row in paper.formulas])
    db.conn.executemany(_INSERTS["paper_tags"], [row for paper in rows for row in paper.tags])
    db.conn.executemany(_INSERTS["paper_enrichment"], [paper.enrichment for paper in rows])


def store_vocabulary(db: sqlite_utils.Database, vocabulary: Vocabulary) -> None:
    """Keep `tag_vocabulary` at `vocabulary`: one row per tag with its combined pattern.

    The site's search (plugins/ai4mat_search.py) tags a query with these rules to favour papers
    carrying the same tags; the published file is all it has, so the rules travel inside it.
    Rewritten only when the stored version differs; inside the caller's transaction.
    """
    create_tag_vocabulary(db)
    stored = db.execute("SELECT DISTINCT vocabulary_version FROM tag_vocabulary").fetchall()
    if stored == [(vocabulary.version,)]:
        return
    db.execute("DELETE FROM tag_vocabulary")
    db.conn.executemany(
        "INSERT INTO tag_vocabulary (kind, tag, pattern, vocabulary_version) VALUES (?, ?, ?, ?)",
        [(rule.kind, rule.tag, rule.pattern, vocabulary.version) for rule in vocabulary.rules],
    )


def create_tag_vocabulary(db: sqlite_utils.Database) -> None:
    db["tag_vocabulary"].create(
        {"kind": str, "tag": str, "pattern": str, "vocabulary_version": str},
        pk=("kind", "tag"), not_null={"pattern", "vocabulary_version"}, if_not_exists=True,
    )


def _paper_texts(db: sqlite_utils.Database, arxiv_ids: list[str]) -> Iterator[tuple]:
    for start in range(0, len(arxiv_ids), 500):
        chunk = arxiv_ids[start : start + 500]
        yield from db.execute(
            f"SELECT arxiv_id, version, title, summary, comment, updated FROM papers WHERE arxiv_id IN ({','.join('?' * len(chunk))})",
            chunk,
        )


def enrich_papers(db: sqlite_utils.Database, arxiv_ids: Iterable[str], vocabulary: Vocabulary | None = None) -> int:
    """Recompute the enrichment rows of these papers from their current row in `papers`.

    Papers not in `papers` lose any enrichment rows. Runs inside the caller's transaction (it
    does not commit). Returns the number of papers enriched.
    """
    vocabulary = vocabulary or default_vocabulary()
    arxiv_ids = sorted(set(arxiv_ids))
    rows = [enrich_paper(*text[:5], vocabulary, text[5]) for text in _paper_texts(db, arxiv_ids)]
    store_rows(db, arxiv_ids, rows)
    store_vocabulary(db, vocabulary)
    return len(rows)


def stale_papers(db: sqlite_utils.Database, vocabulary: Vocabulary) -> int:
    """How many papers were not enriched with `vocabulary`'s version (another version, or never).

    Two index counts, not a scan: every paper has at most one `paper_enrichment` row.
    """
    if not db["papers"].exists():
        return 0
    papers = db.execute("SELECT count(*) FROM papers").fetchone()[0]
    if not db["paper_enrichment"].exists():
        return papers
    current = db.execute(
        "SELECT count(*) FROM paper_enrichment WHERE vocabulary_version = ?", [vocabulary.version]
    ).fetchone()[0]
    return papers - current


# ---------------------------------------------------------------- the whole file

_WORKER_VOCABULARY: Vocabulary | None = None
CHUNK = 1000  # papers per worker task: big enough to amortise pickling, small for a smooth bar


def _init_worker(vocabulary: Vocabulary) -> None:
    global _WORKER_VOCABULARY
    _WORKER_VOCABULARY = vocabulary


def _enrich_chunk(texts: list[tuple]) -> list[EnrichedRows]:
    return [enrich_paper(*text[:5], _WORKER_VOCABULARY, text[5]) for text in texts]


def _chunks_of_papers(db: sqlite_utils.Database) -> Iterator[list[tuple]]:
    cursor = db.conn.execute("SELECT arxiv_id, version, title, summary, comment, updated FROM papers ORDER BY rowid")
    while True:
        texts = cursor.fetchmany(CHUNK)
        if not texts:
            return
        yield texts


def enrich_all(db: sqlite_utils.Database, vocabulary: Vocabulary | None = None, *, workers: int = 1,
               progress=None) -> int:
    """Recompute every paper's enrichment rows; inside the caller's transaction.

    The result is the same for any `workers` (extraction is pure); more than one spreads the
    extraction over processes while this one reads and writes. `progress(n)` is called after
    each `n` papers stored. Returns the number of papers enriched.
    """
    from ..store import tag_year_counts_recounted

    with tag_year_counts_recounted(db):
        return _enrich_all(db, vocabulary or default_vocabulary(), workers, progress)


def _enrich_all(db: sqlite_utils.Database, vocabulary: Vocabulary, workers: int, progress) -> int:
    for table in ENRICH_TABLES:
        db.conn.execute(f"DELETE FROM {table}")
    store_vocabulary(db, vocabulary)
    total = 0

    def store(batch: list[EnrichedRows]) -> None:
        nonlocal total
        store_rows(db, [], batch)
        total += len(batch)
        if progress is not None:
            progress(len(batch))

    if workers <= 1:
        for texts in _chunks_of_papers(db):
            store([enrich_paper(*text[:5], vocabulary, text[5]) for text in texts])
        return total
    import multiprocessing
    from collections import deque

    # This process reads and writes SQLite (a connection stays in its thread), the workers only
    # extract; a few chunks in flight per worker keep them busy while this one stores.
    context = multiprocessing.get_context("fork")
    with context.Pool(workers, initializer=_init_worker, initargs=(vocabulary,)) as pool:
        in_flight: deque = deque()
        for texts in _chunks_of_papers(db):
            in_flight.append(pool.apply_async(_enrich_chunk, (texts,)))
            if len(in_flight) >= 3 * workers:
                store(in_flight.popleft().get())
        while in_flight:
            store(in_flight.popleft().get())
    return total

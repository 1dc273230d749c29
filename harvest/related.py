"""Related papers: the 10 nearest papers of every paper, derived only from stored papers.

Similarity of two papers = half the cosine of their tf-idf vectors + a quarter each the cosines
of their WordLlama and all-MiniLM-L6-v2 embeddings. tf-idf: porter-stemmed words of title and
abstract (the FTS index's stems, so document frequencies come from its `fts5vocab`), sublinear
tf, stop words dropped. A pair where a paper has no MiniLM vector yet (`ai4mat embed` runs after
the harvest) uses WordLlama's cosine, shifted to MiniLM's scale, in its place; `ai4mat embed`
then recomputes the lists of the papers it embedded.
Candidates are each paper's nearest papers by WordLlama (an HNSW index from usearch for the
full recompute; exact for the daily update), re-scored exactly with the combined similarity.
On the 1,448 real papers this is more topic-coherent than any one signal alone
(benchmarks/related_coherence.py).
"""

from __future__ import annotations

import functools
import logging
import math
import random
import re
import time
from typing import Callable, Iterable

import numpy as np
import sqlite_utils

from . import embed, minilm

log = logging.getLogger(__name__)

NEIGHBOURS = 10
SAMPLE = 5000  # papers sampled to estimate common stems' frequencies in the daily update
# Nearest papers by WordLlama, re-scored with all three signals. On the 1,448 real papers (dev /
# read coherence) 50 gave 0.580 / 0.397, 100 0.590 / 0.423, 150-200 0.583 / 0.427, exact over
# every paper 0.587 / 0.432: tf-idf and MiniLM find neighbours WordLlama ranks below its 50th.
CANDIDATES = 100
# MiniLM's cosines run lower than WordLlama's (0.454 against 0.599 over each paper's 50 nearest,
# 1,448 real papers). With this shift, a paper without a MiniLM vector is named in related lists
# as often as one with: half the papers' vectors removed, 49.9% of the rows name one of that half
# (46.1% with a shift of 0.12, 51.7% with 0.06, 57.1% with none).
MINILM_OFFSET = 0.08
BATCH = 2000
_WORD = re.compile(r"[^\W_]+")
STOP_WORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further had
has have having he her here hers how i if in into is it its itself just me more most my no nor not
of off on once only or other our out over own same she should so some such than that the their
them then there these they this those through to too under until up very was we were what when
where which while who whom why will with would you your we our these this using based via new
show shows shown propose proposed present presents paper study studies work approach method
results result also however furthermore moreover here well respectively
""".split())


@functools.lru_cache(maxsize=1)
def _stemmer():
    import snowballstemmer

    return snowballstemmer.stemmer("porter")


@functools.lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    return _stemmer().stemWord(word)


def terms(title: str, summary: str) -> dict[str, int]:
    """Porter stems of the title's and abstract's words with their counts (stop words and numbers out)."""
    counts: dict[str, int] = {}
    for word in _WORD.findall(f"{title} {summary}".lower()):
        if len(word) < 2 or word.isdigit() or word in STOP_WORDS:
            continue
        stem = _stem(word)
        counts[stem] = counts.get(stem, 0) + 1
    return counts


class DocumentFrequency:
    """Document frequencies of stems, read from the FTS index (papers_fts) through fts5vocab."""

    def __init__(self, db: sqlite_utils.Database):
        self.conn = db.conn
        self.conn.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.ai4mat_vocab USING fts5vocab(main, papers_fts, row)")
        self.papers = db.execute("SELECT count(*) FROM papers").fetchone()[0]
        self.cache: dict[str, int] = {}
        self.unseen: int | None = None

    def load_all(self) -> None:
        self.cache = dict(self.conn.execute("SELECT term, doc FROM temp.ai4mat_vocab"))

    def estimate_common(self, sample: int = SAMPLE) -> None:
        """Estimate the frequencies of common stems from a random sample of papers.

        Counting a stem walks its whole doclist (83 ms for "model" at a million papers): every
        stem gets N x its share of the sample instead. Files up to `sample` papers are counted exactly.
        """
        if self.papers <= sample:
            self.load_all()
            return
        seen: dict[str, int] = {}
        (highest,) = self.conn.execute("SELECT max(rowid) FROM papers").fetchone()
        rowids = random.Random(0).sample(range(1, highest + 1), min(sample, highest))
        for chunk in range(0, len(rowids), 500):
            part = rowids[chunk : chunk + 500]
            marks = ",".join("?" * len(part))
            for title, summary in self.conn.execute(f"SELECT title, summary FROM papers WHERE rowid IN ({marks})", part):
                for stem in terms(title, summary):
                    seen[stem] = seen.get(stem, 0) + 1
        drawn = max(1, min(sample, self.papers))
        for stem, count in seen.items():
            self.cache[stem] = round(self.papers * count / drawn)
        # A stem no sampled paper has is rare: counting each (thousands a day, ~0.5 ms each at a
        # million papers) would cost more than the rest of the update, so it gets half the
        # smallest frequency the sample can show. The next full recompute uses exact counts.
        self.unseen = max(2, round(self.papers / drawn / 2))

    def __getitem__(self, stem: str) -> int:
        if stem not in self.cache and self.unseen is not None:
            return self.unseen
        if stem not in self.cache:
            row = self.conn.execute("SELECT doc FROM temp.ai4mat_vocab WHERE term = ?", [stem]).fetchone()
            self.cache[stem] = row[0] if row else 0
        return self.cache[stem]

    def idf(self, stem: str) -> float:
        return math.log((1 + self.papers) / (1 + self[stem]))


def tfidf(counts: dict[str, int], frequency: DocumentFrequency) -> dict[str, float]:
    """L2-normalised sublinear tf-idf weights; stems in one paper only carry no similarity."""
    weights = {}
    for stem, count in counts.items():
        if frequency[stem] >= 2:
            weights[stem] = (1 + math.log(count)) * frequency.idf(stem)
    norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
    return {stem: w / norm for stem, w in weights.items()}


def _cosine(a: dict[str, float], b: dict[str, float]) -> float:
    if len(a) > len(b):
        a, b = b, a
    return sum(w * b.get(stem, 0.0) for stem, w in a.items())


def combine(lexical: np.ndarray, wordllama: np.ndarray, minilm_cosine: np.ndarray) -> np.ndarray:
    """The pair similarity: tf-idf 1/2, WordLlama 1/4, MiniLM 1/4. NaN in `minilm_cosine` (a
    paper without a MiniLM vector) takes WordLlama's cosine minus MINILM_OFFSET instead."""
    minilm_cosine = np.where(np.isnan(minilm_cosine), wordllama - MINILM_OFFSET, minilm_cosine)
    return 0.5 * lexical + 0.25 * wordllama + 0.25 * minilm_cosine


class MiniLMVectors:
    """Stored all-MiniLM-L6-v2 vectors of some papers (int8 rows and their norms); `cosines`
    gives NaN for a paper without one."""

    def __init__(self, rows: dict[str, int], matrix: np.ndarray):
        self.rows = rows
        self.matrix = matrix
        # Squares summed as int32 (at most 384 x 127^2): no float copy of a million rows.
        self.norms = np.maximum(np.sqrt(np.einsum("ij,ij->i", matrix, matrix, dtype=np.int32)).astype(np.float32), 1e-9)

    @classmethod
    def read(cls, db: sqlite_utils.Database, arxiv_ids: Iterable[str] | None = None) -> "MiniLMVectors":
        """All stored vectors, or those of `arxiv_ids`."""
        found: list[tuple[str, bytes]] = []
        query = "SELECT arxiv_id, embedding FROM paper_embeddings_minilm"
        if arxiv_ids is None:
            found = db.execute(query).fetchall()
        else:
            wanted = sorted(set(arxiv_ids))
            for start in range(0, len(wanted), 500):
                part = wanted[start : start + 500]
                found += db.execute(f"{query} WHERE arxiv_id IN ({','.join('?' * len(part))})", part).fetchall()
        rows = {arxiv_id: i for i, (arxiv_id, _) in enumerate(found)}
        blobs = b"".join(blob for _, blob in found)
        return cls(rows, np.frombuffer(blobs, dtype=np.int8).reshape(-1, minilm.DIM))

    def rows_of(self, arxiv_ids: list[str]) -> np.ndarray:
        """Each paper's row in `matrix`, -1 for a paper without a vector."""
        return np.fromiter((self.rows.get(arxiv_id, -1) for arxiv_id in arxiv_ids), dtype=np.int64, count=len(arxiv_ids))

    def cosines(self, arxiv_id: str, others: list[str]) -> np.ndarray:
        return self.cosines_between(self.rows.get(arxiv_id, -1), self.rows_of(others))

    def cosines_between(self, row: int, rows: np.ndarray) -> np.ndarray:
        """Cosines of the vector at `row` with those at `rows` (as `rows_of` gives them)."""
        out = np.full(len(rows), np.nan, dtype=np.float32)
        have = rows >= 0
        if row < 0 or not have.any():
            return out
        vector = self.matrix[row].astype(np.float32)
        out[have] = (self.matrix[rows[have]].astype(np.float32) @ vector) / (self.norms[rows[have]] * self.norms[row])
        return out


# ---------------------------------------------------------------- embeddings


def embed_missing(db: sqlite_utils.Database, *, batch: int = BATCH, progress: Callable[[int], None] | None = None) -> int:
    """Embed every paper that has no stored embedding (older files); returns how many. One transaction per batch."""
    done = 0
    last_rowid = 0
    while True:
        # Walk papers by rowid: rescanning from the start for the missing ones would be quadratic.
        page = db.execute(
            "SELECT p.rowid, p.arxiv_id, p.title, p.summary, e.arxiv_id IS NOT NULL FROM papers p "
            "LEFT JOIN paper_embeddings e ON e.arxiv_id = p.arxiv_id WHERE p.rowid > ? ORDER BY p.rowid LIMIT ?",
            [last_rowid, batch],
        ).fetchall()
        if not page:
            return done
        last_rowid = page[-1][0]
        rows = [(arxiv_id, title, summary) for _, arxiv_id, title, summary, embedded in page if not embedded]
        if not rows:
            continue
        vectors = embed.embed([embed.paper_text(title, summary) for _, title, summary in rows])
        with db.atomic():
            db.conn.executemany(
                "INSERT OR REPLACE INTO paper_embeddings (arxiv_id, model, embedding) VALUES (?, ?, ?)",
                [(arxiv_id, embed.MODEL, embed.to_blob(vector)) for (arxiv_id, _, _), vector in zip(rows, vectors)],
            )
        done += len(rows)
        if progress:
            progress(done)


def _all_embeddings(db: sqlite_utils.Database) -> tuple[list[str], np.ndarray]:
    ids, blobs = [], []
    for arxiv_id, blob in db.execute("SELECT arxiv_id, embedding FROM paper_embeddings ORDER BY arxiv_id"):
        ids.append(arxiv_id)
        blobs.append(blob)
    matrix = np.frombuffer(b"".join(blobs), dtype=np.int8).reshape(-1, embed.DIM) if blobs else np.zeros((0, embed.DIM), np.int8)
    return ids, matrix


def _unit(matrix: np.ndarray) -> np.ndarray:
    matrix = matrix.astype(np.float32)
    return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-9)


# ---------------------------------------------------------------- related: full recompute


def recompute_related(db: sqlite_utils.Database, *, threads: int = 2, log_every: float = 30.0) -> int:
    """Replace `related` with the NEIGHBOURS best papers of every embedded paper; returns papers done.

    Reads every embedding and text once, builds an HNSW index (usearch) for the candidates, and
    writes the whole table in one transaction, so readers see the old lists or the new ones.
    """
    from usearch.index import Index

    started = time.monotonic()
    ids, matrix = _all_embeddings(db)
    count = len(ids)
    frequency = DocumentFrequency(db)
    frequency.load_all()
    # Sparse tf-idf rows as one CSR structure over stem ids: compact at a million papers.
    stem_ids: dict[str, int] = {}
    indptr = np.zeros(count + 1, dtype=np.int64)
    indices: list[np.ndarray] = []
    values: list[np.ndarray] = []
    position = {arxiv_id: i for i, arxiv_id in enumerate(ids)}
    texts = db.execute("SELECT p.arxiv_id, p.title, p.summary FROM papers p JOIN paper_embeddings e ON e.arxiv_id = p.arxiv_id")
    rows_by_position: list[tuple[np.ndarray, np.ndarray] | None] = [None] * count
    for arxiv_id, title, summary in texts:
        weights = tfidf(terms(title, summary), frequency)
        keys = np.fromiter((stem_ids.setdefault(stem, len(stem_ids)) for stem in weights), dtype=np.int32, count=len(weights))
        rows_by_position[position[arxiv_id]] = (keys, np.fromiter(weights.values(), dtype=np.float32, count=len(weights)))
    for i, row in enumerate(rows_by_position):
        keys, weights = row if row is not None else (np.zeros(0, np.int32), np.zeros(0, np.float32))
        indices.append(keys)
        values.append(weights)
        indptr[i + 1] = indptr[i] + len(keys)
    del rows_by_position
    all_indices = np.concatenate(indices) if indices else np.zeros(0, np.int32)
    all_values = np.concatenate(values) if values else np.zeros(0, np.float32)
    del indices, values
    log.info("related: %d papers read and weighted in %.0f s", count, time.monotonic() - started)

    k = min(CANDIDATES + 1, count)
    if count <= 20_000:
        # Small files: exact neighbours by embedding.
        unit = _unit(matrix)
        candidates = np.argsort(-(unit @ unit.T), axis=1)[:, :k] if count else np.zeros((0, 0), np.int64)
    else:
        index = Index(ndim=embed.DIM, metric="cos", dtype="i8", connectivity=16, expansion_add=64, expansion_search=64)
        index.add(np.arange(count, dtype=np.uint64), matrix, threads=threads)
        log.info("related: HNSW index built in %.0f s", time.monotonic() - started)
        found = index.search(matrix, k, threads=threads)
        candidates = found.keys.astype(np.int64)
        del index
    log.info("related: candidates found in %.0f s", time.monotonic() - started)

    unit = _unit(matrix)
    minilm_vectors = MiniLMVectors.read(db)
    minilm_rows = minilm_vectors.rows_of(ids)  # once: not a million lists of ids to look up
    dense = np.zeros(len(stem_ids), dtype=np.float32)
    rows = []
    last = time.monotonic()
    for i in range(count):
        start, end = indptr[i], indptr[i + 1]
        dense[all_indices[start:end]] = all_values[start:end]
        chosen = [c for c in candidates[i] if c != i and 0 <= c < count][:CANDIDATES]
        if chosen:
            chosen = np.asarray(chosen, dtype=np.int64)
            starts, ends = indptr[chosen], indptr[chosen + 1]
            lengths = ends - starts
            gather = np.concatenate([np.arange(s, e) for s, e in zip(starts, ends)]) if lengths.sum() else np.zeros(0, np.int64)
            products = dense[all_indices[gather]] * all_values[gather]
            # Per-candidate sums. A candidate without weighted stems (every stem its own) has an empty
            # run: its offset may equal len(products), hence the padding zero; np.where gives it 0.
            sums = np.add.reduceat(np.append(products, np.float32(0)), np.r_[0, np.cumsum(lengths)[:-1]])
            lexical = np.where(lengths > 0, sums, 0.0)
            semantic = unit[chosen] @ unit[i]
            similarity = combine(lexical, semantic, minilm_vectors.cosines_between(minilm_rows[i], minilm_rows[chosen]))
            order = np.argsort(-similarity, kind="stable")[:NEIGHBOURS]
            rows += [(ids[i], ids[chosen[j]], rank, round(float(similarity[j]), 6)) for rank, j in enumerate(order, 1)]
        dense[all_indices[start:end]] = 0.0
        if time.monotonic() - last > log_every:
            last = time.monotonic()
            log.info("related: %d of %d papers scored", i + 1, count)
    with db.atomic():
        db.execute("DELETE FROM related")
        db.conn.executemany("INSERT INTO related (arxiv_id, related_id, rank, score) VALUES (?, ?, ?, ?)", rows)
    log.info("related: %d rows written in %.0f s", len(rows), time.monotonic() - started)
    return count


# ---------------------------------------------------------------- related: daily update


def update_related(db: sqlite_utils.Database, arxiv_ids: Iterable[str]) -> int:
    """Give these (new or changed) papers their related lists, and add them to other papers' lists
    where they beat that paper's 10th. Exact over every embedded paper; runs in the caller's transaction.
    """
    targets = sorted(set(arxiv_ids))
    if not targets:
        return 0
    ids, matrix = _all_embeddings(db)
    if len(ids) < 2:
        return 0
    position = {arxiv_id: i for i, arxiv_id in enumerate(ids)}
    targets = [arxiv_id for arxiv_id in targets if arxiv_id in position]
    frequency = DocumentFrequency(db)
    frequency.estimate_common()
    texts: dict[str, dict[str, float]] = {}

    def vector(arxiv_id: str) -> dict[str, float]:
        if arxiv_id not in texts:
            title, summary = db.execute("SELECT title, summary FROM papers WHERE arxiv_id = ?", [arxiv_id]).fetchone()
            texts[arxiv_id] = tfidf(terms(title, summary), frequency)
        return texts[arxiv_id]

    target_rows = np.asarray([position[a] for a in targets])
    target_unit = _unit(matrix[target_rows])
    found: dict[str, list[tuple[float, str]]] = {}
    for start in range(0, len(targets), 256):
        block = target_unit[start : start + 256]
        similarity = _blocked(matrix, block)
        nearest = {
            arxiv_id: [j for j in np.argpartition(-similarity[:, column], min(CANDIDATES + 1, len(ids) - 1))[: CANDIDATES + 1] if ids[j] != arxiv_id]
            for column, arxiv_id in enumerate(targets[start : start + 256])
        }
        minilm_vectors = MiniLMVectors.read(db, {ids[j] for js in nearest.values() for j in js} | set(nearest))
        for column, arxiv_id in enumerate(targets[start : start + 256]):
            others = [ids[j] for j in nearest[arxiv_id]]
            lexical = np.asarray([_cosine(vector(arxiv_id), vector(other)) for other in others], dtype=np.float32)
            scores = combine(lexical, similarity[nearest[arxiv_id], column], minilm_vectors.cosines(arxiv_id, others))
            scored = [(round(float(s), 6), other) for s, other in zip(scores, others)]
            scored.sort(key=lambda item: (-item[0], item[1]))
            found[arxiv_id] = scored
    changed = set(targets)
    for arxiv_id in targets:
        db.execute("DELETE FROM related WHERE arxiv_id = ?", [arxiv_id])
        db.conn.executemany(
            "INSERT INTO related (arxiv_id, related_id, rank, score) VALUES (?, ?, ?, ?)",
            [(arxiv_id, other, rank, score) for rank, (score, other) in enumerate(found[arxiv_id][:NEIGHBOURS], 1)],
        )
    # The same symmetric score decides whether a new paper enters an older paper's list.
    for arxiv_id in targets:
        for score, other in found[arxiv_id]:
            if other in changed:
                continue
            current = db.execute(
                "SELECT related_id, score FROM related WHERE arxiv_id = ? ORDER BY rank", [other]
            ).fetchall()
            current = [(s, r) for r, s in current if r != arxiv_id]
            if len(current) >= NEIGHBOURS and score <= current[NEIGHBOURS - 1][0]:
                continue
            merged = sorted(current + [(score, arxiv_id)], key=lambda item: (-item[0], item[1]))[:NEIGHBOURS]
            db.execute("DELETE FROM related WHERE arxiv_id = ?", [other])
            db.conn.executemany(
                "INSERT INTO related (arxiv_id, related_id, rank, score) VALUES (?, ?, ?, ?)",
                [(other, related_id, rank, s) for rank, (s, related_id) in enumerate(merged, 1)],
            )
    return len(targets)


def _blocked(matrix: np.ndarray, block: np.ndarray, rows: int = 100_000) -> np.ndarray:
    """Cosine of every stored vector with each of `block`, a slice of rows at a time (a million
    int8 rows as float32 would be 1 GB)."""
    out = np.empty((len(matrix), block.shape[0]), dtype=np.float32)
    for start in range(0, len(matrix), rows):
        out[start : start + rows] = _unit(matrix[start : start + rows]) @ block.T
    return out


def enrich_all(db: sqlite_utils.Database, *, threads: int = 2) -> dict:
    """Embed papers that lack an embedding, then recompute every paper's related list."""
    embedded = embed_missing(db)
    papers = recompute_related(db, threads=threads)
    return {"embedded": embedded, "related": papers}

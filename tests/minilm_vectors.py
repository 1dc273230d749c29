"""all-MiniLM-L6-v2 vectors of the 1,448 real papers (tests/fixtures/ai4mat/papers.json), cached.

Embedding them takes 50-60 s on 2 cores; the search tests read them from
`fixtures/ai4mat/minilm_vectors.npy` (int8, one row per paper in papers.json's order, as
`ai4mat embed` stores them). `tests/test_minilm.py` re-embeds a sample and checks the cache, so a
change to the model's input or code fails there until the cache is written again:

    python -m tests.minilm_vectors
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "ai4mat"
CACHE = FIXTURES / "minilm_vectors.npy"


def papers() -> list[dict]:
    return json.loads((FIXTURES / "papers.json").read_text(encoding="utf-8"))["papers"]


def embed(texts: list[str], workers: int = 1) -> np.ndarray:
    """int8 rows, as stored."""
    from harvest import minilm

    with minilm.Workers(workers) as encoder:
        vectors = encoder.encode(texts)
    return np.stack([np.frombuffer(minilm.to_blob(vector), dtype=np.int8) for vector in vectors])


def texts(selection: list[dict]) -> list[str]:
    from harvest import minilm

    return [minilm.paper_text(paper["title"], paper["summary"]) for paper in selection]


def load() -> dict[str, bytes]:
    """arxiv_id -> the stored blob."""
    matrix = np.load(CACHE)
    ids = [paper["arxiv_id"] for paper in papers()]
    assert matrix.shape == (len(ids), 384), f"{CACHE} is stale: run python -m tests.minilm_vectors"
    return {arxiv_id: row.tobytes() for arxiv_id, row in zip(ids, matrix)}


if __name__ == "__main__":
    np.save(CACHE, embed(texts(papers()), workers=2))
    print(f"wrote {CACHE}")

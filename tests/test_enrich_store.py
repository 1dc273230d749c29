"""Enrichment rows in the SQLite file: kept in step by every save, migrated in, recomputed by `ai4mat enrich`."""

from __future__ import annotations

import json
import sqlite3

import pytest
import sqlite_utils
from click.testing import CliRunner

from harvest import store
from harvest.cli import cli
from harvest.enrich import ENRICH_TABLES, enrich_all
from harvest.store import save_papers, save_papers_bulk, start_run, writing

from .dumps import dump
from .fake_arxiv import make_paper

VOCABULARY = "2026.12.1"

MOF_PAPER = make_paper(
    1, title="Diffusion models for MOF design",
    summary="We generate metal-organic frameworks with a diffusion model and screen CO$_2$ uptake in "
            "Zn-based and Cu-based frameworks. Code: https://github.com/lab/mofdiff.",
    comment="Data at https://zenodo.org/records/123",
)
UPDATED = MOF_PAPER["updated"]  # copied into tag and element rows for the newest-first indexes
PLAIN_PAPER = make_paper(2, title="A note on lattices", summary="We count lattice points.", comment=None)


def enrichment(db) -> dict[str, list[tuple]]:
    return {
        table: sorted(db.execute(f"SELECT * FROM {table}").fetchall())
        for table in ("paper_links", "paper_elements", "paper_formulas", "paper_tags", "paper_enrichment")
    }


def saved(db, papers, *, bulk=False):
    run_id = start_run(db, "q")
    with db.atomic():
        (save_papers_bulk if bulk else save_papers)(db, run_id, papers)
    return db


MOF_ROWS = {
    "paper_links": [
        ("2611.00001", 0, "https://github.com/lab/mofdiff", "code", "github.com", "summary"),
        ("2611.00001", 1, "https://zenodo.org/records/123", "data", "zenodo.org", "comment"),
    ],
    "paper_elements": [("2611.00001", symbol, UPDATED) for symbol in ("C", "Cu", "O", "Zn")],
    "paper_formulas": [("2611.00001", "CO2", "CO$_2$", "compound", "C O")],
    "paper_tags": [
        ("2611.00001", "material", "MOF", 2, 1, VOCABULARY, UPDATED),
        ("2611.00001", "method", "diffusion model", 2, 1, VOCABULARY, UPDATED),
    ],
    "paper_enrichment": [("2611.00001", 1, VOCABULARY, 0)],
}


@pytest.mark.parametrize("bulk", [False, True], ids=["harvest", "backfill"])
def test_saving_a_paper_stores_what_it_is_about(bulk):
    db = saved(_memory_db(), [MOF_PAPER, PLAIN_PAPER], bulk=bulk)
    rows = enrichment(db)
    assert rows == {
        table: MOF_ROWS[table] + ([("2611.00002", 1, VOCABULARY, 0)] if table == "paper_enrichment" else [])
        for table in MOF_ROWS
    }


def _memory_db():
    db = sqlite_utils.Database(memory=True)
    store.ensure_db_shape(db)
    return db


def test_a_new_version_or_a_changed_comment_replaces_the_rows_and_nothing_else_is_touched():
    db = saved(_memory_db(), [MOF_PAPER, PLAIN_PAPER])
    version_2 = {**MOF_PAPER, "version": 2, "title": "Flow matching for MOF design",
                 "summary": "Flow matching generates metal-organic frameworks.", "comment": None}
    saved(db, [version_2, PLAIN_PAPER])
    rows = enrichment(db)
    assert rows["paper_links"] == [] and rows["paper_elements"] == [] and rows["paper_formulas"] == []
    assert [(r[0], r[2], r[5]) for r in rows["paper_tags"]] == [
        ("2611.00001", "MOF", VOCABULARY), ("2611.00001", "flow matching/normalizing flow", VOCABULARY),
    ]
    assert rows["paper_enrichment"] == [("2611.00001", 2, VOCABULARY, 0), ("2611.00002", 1, VOCABULARY, 0)]
    # arXiv adds a comment to the same version: the paper is refreshed and its links follow.
    saved(db, [{**PLAIN_PAPER, "comment": "Code: https://gitlab.com/g/lattice"}])
    assert enrichment(db)["paper_links"] == [
        ("2611.00002", 0, "https://gitlab.com/g/lattice", "code", "gitlab.com", "comment"),
    ]


def _schema_1_file(path, papers):
    """A file as schema 1 wrote it: no enrichment tables."""
    db = sqlite_utils.Database(path)
    store._schema_v1(db)
    db.execute("PRAGMA user_version = 1")
    run_id = start_run(db, "q")
    with db.atomic():
        for paper in papers:
            row = {column: value for column, value in store._as_row(paper).items() if column != "classifications"}
            db.execute(
                f"INSERT INTO papers (arxiv_id, {', '.join(row)}, first_run, last_run) VALUES (?, {', '.join('?' * len(row))}, ?, ?)",
                [paper["arxiv_id"], *row.values(), run_id, run_id],
            )
    db.close()


def test_a_schema_1_file_is_migrated_in_place_with_every_paper_enriched_once(db_path):
    _schema_1_file(db_path, [MOF_PAPER, PLAIN_PAPER])
    before = dump(db_path, ("papers",))["papers"]
    with writing(db_path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION
        assert enrichment(db)["paper_tags"] == MOF_ROWS["paper_tags"]
        assert len(enrichment(db)["paper_enrichment"]) == 2
        assert db.execute("SELECT count(*), min(vocabulary_version), max(vocabulary_version) FROM tag_vocabulary").fetchone() == (
            55, VOCABULARY, VOCABULARY,
        )
    migrated = dump(db_path, ("papers", *ENRICH_TABLES))
    # Schema 6 adds classifications (last, empty for these papers); the rest is untouched.
    assert [row[:-1] for row in migrated["papers"]] == before
    assert [row[-1] for row in migrated["papers"]] == ["[]", "[]"]
    with writing(db_path):  # opening again changes nothing
        pass
    assert dump(db_path, ("papers", *ENRICH_TABLES)) == migrated


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_enrich_recomputes_the_same_rows_idempotently_in_parallel_too(db_path, config_path):
    with writing(db_path) as db:
        saved(db, [MOF_PAPER, PLAIN_PAPER])
    stored = dump(db_path, ENRICH_TABLES)
    for workers in (1, 2):
        result = invoke("enrich", "--db", db_path, "--config", config_path, "--workers", workers)
        assert (result.exit_code, result.stdout) == (0, f"enrich: 2 papers tagged with vocabulary {VOCABULARY}\n")
        assert {t: sorted(r) for t, r in dump(db_path, ENRICH_TABLES).items() if t != "sqlite_master"} == {
            t: sorted(r) for t, r in stored.items() if t != "sqlite_master"
        }


def test_enrich_applies_a_user_vocabulary_from_the_config(db_path, config_path, tmp_path):
    (tmp_path / "lab.json").write_text(json.dumps({"version": "lab-1", "tags": [
        {"kind": "task", "tag": "carbon capture", "patterns": ["uptake", "carbon capture"], "min_mentions": 1},
    ]}))
    config_path.write_text(json.dumps({"query": "q", "vocabulary": "lab.json"}))
    with writing(db_path) as db:
        saved(db, [MOF_PAPER])
    result = invoke("enrich", "--db", db_path, "--config", config_path)
    assert (result.exit_code, result.stdout) == (0, f"enrich: 1 papers tagged with vocabulary {VOCABULARY}+lab-1\n")
    with writing(db_path) as db:
        assert [(r[2], r[5]) for r in enrichment(db)["paper_tags"]] == [
            ("MOF", f"{VOCABULARY}+lab-1"), ("diffusion model", f"{VOCABULARY}+lab-1"),
            ("carbon capture", f"{VOCABULARY}+lab-1"),
        ]
        assert enrichment(db)["paper_enrichment"] == [("2611.00001", 1, f"{VOCABULARY}+lab-1", 0)]
        # The rules travel in the file for search to tag queries with: the packaged tags and the lab's.
        rules = db.execute("SELECT kind, tag, vocabulary_version FROM tag_vocabulary ORDER BY rowid").fetchall()
        assert (len(rules), rules[0], rules[-1]) == (
            56, ("material", "perovskite", f"{VOCABULARY}+lab-1"), ("task", "carbon capture", f"{VOCABULARY}+lab-1"),
        )


@pytest.mark.parametrize("content, message", [
    (None, "{v}: vocabulary file not found"),
    ("{", "{v}: not valid JSON (Expecting property name enclosed in double quotes, line 1)"),
    ('{"version": "2", "tags": [{"kind": "task", "tag": "x", "patterns": []}]}', "{v}: tag 'x' needs a non-empty list of patterns"),
])
def test_a_bad_user_vocabulary_fails_with_one_line_and_changes_nothing(db_path, config_path, tmp_path, content, message):
    vocabulary = tmp_path / "bad.json"
    if content is not None:
        vocabulary.write_text(content)
    config_path.write_text(json.dumps({"query": "q", "vocabulary": "bad.json"}))
    with writing(db_path) as db:
        saved(db, [MOF_PAPER])
    before = dump(db_path, ENRICH_TABLES)
    for command in (["enrich"], ["harvest", "--api-url", "http://127.0.0.1:9/"]):
        result = invoke(*command, "--db", db_path, "--config", config_path)
        assert (result.exit_code, result.output) == (1, "Error: " + message.format(v=vocabulary) + "\n")
    assert dump(db_path, ENRICH_TABLES) == before


def test_enrich_on_a_missing_file_says_so(tmp_path, config_path):
    missing = tmp_path / "none" / "ai4mat.db"
    result = invoke("enrich", "--db", missing, "--config", config_path)
    assert result.exit_code == 1
    assert result.output == f"Error: enrich failed: {missing}: database not found (run `ai4mat harvest --db {missing}` first)\n"


def test_enrich_if_stale_retags_a_file_tagged_by_another_vocabulary_and_else_leaves_it(db_path, config_path):
    with writing(db_path) as db:
        saved(db, [MOF_PAPER, PLAIN_PAPER])
    with sqlite3.connect(db_path) as conn:  # the MOF paper was tagged by last month's vocabulary
        conn.execute("UPDATE paper_tags SET vocabulary_version = '2026.11.1'")
        conn.execute("UPDATE paper_enrichment SET vocabulary_version = '2026.11.1' WHERE arxiv_id = '2611.00001'")
    conn.close()
    result = invoke("enrich", "--db", db_path, "--config", config_path, "--if-stale")
    assert (result.exit_code, result.stdout, result.stderr) == (
        0, f"enrich: 2 papers tagged with vocabulary {VOCABULARY}\n",
        "enrich: 1 papers were tagged with another vocabulary (or none)\nenrich\n",  # then the progress bar's label
    )
    with writing(db_path) as db:
        assert {t: [r for r in rows if r[0] == "2611.00001"] for t, rows in enrichment(db).items()} == MOF_ROWS
    current = db_path.read_bytes()
    result = invoke("enrich", "--db", db_path, "--config", config_path, "--if-stale")
    assert (result.exit_code, result.stdout, result.stderr) == (
        0, f"enrich: every paper is tagged with vocabulary {VOCABULARY}; nothing to do\n", "",
    )
    assert db_path.read_bytes() == current


def test_enrich_if_stale_on_a_file_without_papers_has_nothing_to_do(tmp_path, config_path):
    missing = tmp_path / "ai4mat.db"
    result = invoke("enrich", "--db", missing, "--config", config_path, "--if-stale")
    assert (result.exit_code, result.output) == (0, f"enrich: {missing} holds no papers yet; nothing to do\n")
    assert not missing.exists()


def test_enrich_all_rolls_back_with_the_callers_transaction():
    db = saved(_memory_db(), [MOF_PAPER])
    before = enrichment(db)
    with pytest.raises(sqlite3.IntegrityError):
        with db.atomic():
            enrich_all(db)
            db.execute("INSERT INTO paper_enrichment (arxiv_id, version, vocabulary_version) VALUES ('2611.00001', 1, 'x')")
    assert enrichment(db) == before


def test_a_file_before_the_tag_vocabulary_gains_the_one_search_uses(db_path):
    with writing(db_path) as db:
        saved(db, [MOF_PAPER])
        db.execute("DROP TABLE tag_vocabulary")
        db.execute(f"PRAGMA user_version = {store.MIGRATIONS.index(store._schema_v9_tag_vocabulary)}")
    with writing(db_path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION
        assert db.execute("SELECT kind, tag, vocabulary_version FROM tag_vocabulary WHERE tag = 'MOF'").fetchall() == [
            ("material", "MOF", VOCABULARY),
        ]
        assert db.execute("SELECT count(*) FROM tag_vocabulary").fetchone() == (55,)


TAG_YEAR_TRIGGERS = "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'tag_year_counts_%' ORDER BY name"
TAG_YEARS = "SELECT year, kind, tag, papers FROM tag_year_counts ORDER BY 1, 2, 3"


def test_enrich_all_recounts_tag_years_and_keeps_their_triggers():
    db = saved(_memory_db(), [MOF_PAPER])
    triggers, counted = db.execute(TAG_YEAR_TRIGGERS).fetchall(), db.execute(TAG_YEARS).fetchall()
    assert len(triggers) == 3 and ("2026", "material", "MOF", 1) in counted
    db.execute("UPDATE tag_year_counts SET papers = 99")  # wrong counts are recounted from paper_tags
    with db.atomic():
        enrich_all(db, workers=1)
    assert db.execute(TAG_YEAR_TRIGGERS).fetchall() == triggers
    assert db.execute(TAG_YEARS).fetchall() == counted
    db.execute("DELETE FROM paper_tags")  # the triggers work again after
    assert db.execute(TAG_YEARS).fetchall() == []


def test_a_failed_enrich_all_keeps_the_tag_year_triggers():
    db = saved(_memory_db(), [MOF_PAPER])
    triggers = db.execute(TAG_YEAR_TRIGGERS).fetchall()
    with pytest.raises(sqlite3.IntegrityError):
        with db.atomic():
            enrich_all(db, progress=lambda n: db.execute("INSERT INTO paper_tags (arxiv_id) VALUES (NULL)"))
    assert db.execute(TAG_YEAR_TRIGGERS).fetchall() == triggers != []

import json

import pytest
import sqlite_utils

import harvest.fetch
from harvest.fetch import ArxivClient

from .fake_arxiv import FakeArxiv


@pytest.fixture
def fake_arxiv():
    """A started fake arXiv API on 127.0.0.1; set `.papers` and `.faults` before requesting."""
    with FakeArxiv() as fake:
        yield fake


@pytest.fixture
def sleeps(monkeypatch):
    """Every wait the client asks for, in seconds, instead of sleeping."""
    asked: list[float] = []
    monkeypatch.setattr(harvest.fetch, "_sleep", asked.append)
    return asked


@pytest.fixture
def client_for(sleeps):
    """Build an ArxivClient for a fake API, with waits recorded rather than slept."""

    def build(fake: FakeArxiv, **options) -> ArxivClient:
        options.setdefault("timeout", (2.0, 1.0))
        return ArxivClient(fake.url, **options)

    return build


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "ai4mat.db"


@pytest.fixture
def config_path(tmp_path):
    """A config file with a test query; returns its path. Rewrite it for other settings."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"query": 'all:"materials discovery"', "delay_seconds": 0}))
    return path


def rows(path, sql, params=()):
    """Rows of `sql` on the file at `path`, as dicts, through a fresh connection."""
    db = sqlite_utils.Database(path)
    try:
        return list(db.query(sql, params))
    finally:
        db.close()


@pytest.fixture(scope="module")
def site_db(tmp_path_factory):
    """The site's test file (site_data.build_site_db), built once per test module that asks."""
    from .site_data import build_site_db

    path = tmp_path_factory.mktemp("site") / "ai4mat.db"
    build_site_db(path)
    return path

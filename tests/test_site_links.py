"""A site that says what is real: the pages, feeds, README lines and User-Agent name the configured
query, title, site and repository, and nothing that is not configured.
"""

from __future__ import annotations

import json
import re
import urllib.request

import feedparser
import markupsafe
import pytest
from click.testing import CliRunner

from harvest.cli import cli
from harvest.config import ConfigError, load_config, parse_config
from harvest.readme import SITE_END_MARKER, SITE_START_MARKER, render_site_section
from harvest.site_config import SiteLinks, load_rendered_metadata, site_links, user_agent

from .fake_arxiv import make_paper
from .site_data import METADATA_PATH, QUERY, ROOT, build_site_db, serving

OLD_QUERY = load_config(ROOT / "config.json").query
NEW_QUERY = 'cat:astro-ph.GA AND abs:"dark <matter> & halos"'
NOT_REAL = ("fly.dev", "github.com/ai4mat", "ai4mat-arxiv-daily")


def write_config(path, **keys):
    path.write_text(json.dumps({"query": NEW_QUERY, **keys}))
    return path


def test_metadata_is_rendered_for_the_config_and_links_only_what_is_configured():
    config = parse_config({"query": NEW_QUERY, "title": "Galaxy Daily", "dataset_url": "https://galaxies.example.org",
                           "repository": "astro/galaxy-daily"})
    metadata = load_rendered_metadata(METADATA_PATH, config, environ={"GITHUB_REPOSITORY": "someone/else"})
    text = json.dumps(metadata, ensure_ascii=False)
    assert "{{" not in text and "{%" not in text
    assert metadata["title"] == "Galaxy Daily"
    assert f"<code>{markupsafe.escape(NEW_QUERY)}</code>" in metadata["description_html"]
    assert "dark &lt;matter&gt; &amp; halos" in metadata["description_html"]
    assert OLD_QUERY not in text and "materials design" not in text
    # The config's repository wins over the workflow's.
    assert (metadata["about"], metadata["about_url"]) == ("astro/galaxy-daily", "https://github.com/astro/galaxy-daily")
    assert '<a href="https://github.com/astro/galaxy-daily">astro/galaxy-daily</a>' in metadata["description_html"]
    queries = metadata["databases"]["ai4mat"]["queries"]
    assert [queries[name]["title"] for name in ("feed", "feed_search", "feed_author", "feed_category", "feed_tag")] == [
        "Galaxy Daily", "Galaxy Daily: search", "Galaxy Daily: author", "Galaxy Daily: category", "Galaxy Daily: tag",
    ]
    for word in NOT_REAL:
        assert word not in text


def test_without_a_repository_nothing_links_to_one_and_the_workflow_names_it():
    config = parse_config({"query": "cat:cs.LG"})
    metadata = load_rendered_metadata(METADATA_PATH, config, environ={})
    assert "about" not in metadata and "about_url" not in metadata
    assert "github.com" not in json.dumps(metadata)
    assert metadata["databases"]["ai4mat"]["description"] == "One SQLite file, updated daily; download it from this page."
    in_actions = load_rendered_metadata(METADATA_PATH, config, environ={"GITHUB_REPOSITORY": "me/my-fork"})
    assert (in_actions["about"], in_actions["about_url"]) == ("me/my-fork", "https://github.com/me/my-fork")
    assert in_actions["databases"]["ai4mat"]["description"] == (
        "One SQLite file, updated daily; download it from this page or from the GitHub releases of me/my-fork."
    )


def test_serve_shows_the_configured_topic_everywhere(tmp_path):
    """A user changes the query (and title) in config.json and serves: no page shows the old one."""
    db = tmp_path / "ai4mat.db"
    build_site_db(db)
    config = write_config(tmp_path / "config.json", title="Galaxy Daily")
    with serving(db, "--immutable", "--config", str(config)) as (_, base, _):
        pages = {}
        for path in ("", "ai4mat", "ai4mat/search?q=diffusion", "ai4mat/feed.atom", "ai4mat/feed_search.atom?q=diffusion"):
            with urllib.request.urlopen(base + path, timeout=30) as response:
                pages[path] = response.read().decode("utf-8")
    home = pages[""]
    assert "<h1>Galaxy Daily</h1>" in home
    assert f"<code>{markupsafe.escape(NEW_QUERY)}</code>" in home
    assert feedparser.parse(pages["ai4mat/feed.atom"]).feed.title == "Galaxy Daily"
    assert feedparser.parse(pages["ai4mat/feed_search.atom?q=diffusion"]).feed.title == "Galaxy Daily: search"
    for path, text in pages.items():
        assert str(markupsafe.escape(OLD_QUERY)) not in text and "ArXiv Daily – AI4MAT" not in text, path
        for word in NOT_REAL:
            assert word not in text, (path, word)


def test_readme_site_lines_link_the_configured_site_or_say_how_to_publish(tmp_path, fake_arxiv, sleeps):
    db, readme = tmp_path / "ai4mat.db", tmp_path / "README.md"
    fake_arxiv.papers = [make_paper(1)]
    config = write_config(tmp_path / "config.json", delay_seconds=0)
    runner = CliRunner()
    assert runner.invoke(cli, ["harvest", "--db", str(db), "--config", str(config), "--api-url", fake_arxiv.url]).exit_code == 0
    readme.write_text(f"# Mine\n\n{SITE_START_MARKER}\nold lines\n{SITE_END_MARKER}\n\nMore.\n")

    result = runner.invoke(cli, ["readme", "--db", str(db), "--readme", str(readme), "--config", str(config)], env={"GITHUB_REPOSITORY": ""})
    assert result.exit_code == 0, result.output
    text = readme.read_text()
    assert text.startswith("# Mine\n\n" + render_site_section(NEW_QUERY, SiteLinks()) + "\n\nMore.\n")
    assert f"**Query:** `{NEW_QUERY}`" in text
    assert "**Site:** none published yet (`dataset_url` in `config.json` is not set)." in text
    assert "http" not in text.split(SITE_END_MARKER)[0].replace("http://127.0.0.1:8001/", "")

    write_config(config, delay_seconds=0, dataset_url="https://galaxies.example.org")
    result = runner.invoke(cli, ["readme", "--db", str(db), "--readme", str(readme), "--config", str(config)],
                           env={"GITHUB_REPOSITORY": "astro/galaxy-daily"})
    assert result.exit_code == 0, result.output
    section = readme.read_text().split(SITE_START_MARKER)[1].split(SITE_END_MARKER)[0]
    assert "[Atom feed](https://galaxies.example.org/ai4mat/feed.atom)" in section
    assert "`https://galaxies.example.org/ai4mat/feed_search.atom?q=...`" in section
    assert "[astro/galaxy-daily](https://github.com/astro/galaxy-daily)" in section
    assert "<https://github.com/astro/galaxy-daily/releases/latest/download/ai4mat.db>" in section
    assert readme.read_text().count(SITE_START_MARKER) == 1


def test_a_query_with_backticks_stays_one_code_span():
    section = render_site_section("abs:`x` AND\nti:y", SiteLinks())
    assert "**Query:** ``abs:`x` AND ti:y`` (" in section
    assert "**Query:** `` `x` `` (" in render_site_section("`x`", SiteLinks())


def test_the_user_agent_names_the_configured_repository_only(fake_arxiv, tmp_path, sleeps):
    from harvest import __version__

    db = tmp_path / "ai4mat.db"
    fake_arxiv.papers = [make_paper(1)]
    for keys, environ, expected in (
        ({}, {"GITHUB_REPOSITORY": ""}, f"ai4mat/{__version__}"),
        ({}, {"GITHUB_REPOSITORY": "me/my-fork"}, f"ai4mat/{__version__} (+https://github.com/me/my-fork)"),
        ({"repository": "astro/galaxy-daily"}, {"GITHUB_REPOSITORY": "me/my-fork"}, f"ai4mat/{__version__} (+https://github.com/astro/galaxy-daily)"),
    ):
        config = write_config(tmp_path / "config.json", delay_seconds=0, **keys)
        result = CliRunner().invoke(cli, ["harvest", "--db", str(db), "--config", str(config), "--api-url", fake_arxiv.url], env=environ)
        assert result.exit_code == 0, result.output
        assert fake_arxiv.requests[-1].headers["User-Agent"] == expected
    assert user_agent(site_links(None, {})) == f"ai4mat/{__version__}"


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"repository": "https://github.com/a/b"}, '"repository" must be the GitHub repository as owner/name, or null, got \'https://github.com/a/b\''),
        ({"repository": "a b/c"}, '"repository" must be the GitHub repository as owner/name, or null, got \'a b/c\''),
        ({"dataset_url": "galaxies.example.org"}, '"dataset_url" must be the published Datasette\'s base URL (http or https), or null, got \'galaxies.example.org\''),
        ({"title": " "}, '"title" must be a non-empty string'),
    ],
)
def test_bad_site_keys_are_one_line(tmp_path, keys, message):
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(tmp_path / "config.json", **keys))
    assert str(caught.value) == f"{tmp_path / 'config.json'}: {message}"


def test_no_file_of_the_repository_names_the_sites_that_do_not_exist():
    for path in ("README.md", "metadata.yml", "pyproject.toml", "harvest/fetch.py", "scripts/publish.sh", "scripts/daily.sh"):
        text = (ROOT / path).read_text(encoding="utf-8")
        assert "fly.dev" not in text and "github.com/ai4mat" not in text, path
    assert QUERY  # the site tests' harvest query is not the config's

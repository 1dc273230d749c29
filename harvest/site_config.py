"""Where the dataset lives (its site and repository) and the site's metadata as configured.

Nothing here names a deployment: the site URL is config.json's `dataset_url`, the repository its
`repository` or, in GitHub Actions, `$GITHUB_REPOSITORY`. metadata.yml holds Jinja placeholders
in its texts (`{{ query }}`, `{{ title }}`, `{% if repository_url %}`...); `ai4mat serve`,
`scripts/publish.sh` and the daily smoke check serve it rendered with these values, so a changed
`query` shows on every page and no page links to a site or repository that is not configured.

`python -m harvest.site_config metadata [--config FILE] [--metadata FILE]` prints the rendered
metadata as JSON, for the shell scripts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import jinja2
import yaml

from . import __version__
from .config import DEFAULT_TITLE, Config, ConfigError, load_config

DATABASE = "ai4mat"
LOCAL_SITE = "http://127.0.0.1:8001/"


class SiteError(Exception):
    """The metadata cannot be rendered; the message says what to fix."""


@dataclass(frozen=True)
class SiteLinks:
    """The configured site and repository; None where none is configured."""

    site_url: str | None = None  # with a trailing slash
    repository: str | None = None  # owner/name on GitHub

    @property
    def repository_url(self) -> str | None:
        return f"https://github.com/{self.repository}" if self.repository else None

    @property
    def latest_download_url(self) -> str | None:
        return f"{self.repository_url}/releases/latest/download/{DATABASE}.db" if self.repository else None

    def page(self, path: str) -> str | None:
        """The absolute URL of `path` ("ai4mat/feed.atom") on the published site, or None."""
        return self.site_url + path.lstrip("/") if self.site_url else None


def site_links(config: Config | None, environ: Mapping[str, str] = os.environ) -> SiteLinks:
    """The site URL from config `dataset_url`; the repository from config, else $GITHUB_REPOSITORY."""
    site_url = config.dataset_url if config else None
    repository = (config.repository if config else None) or environ.get("GITHUB_REPOSITORY") or None
    return SiteLinks(site_url=site_url.rstrip("/") + "/" if site_url else None, repository=repository)


def user_agent(links: SiteLinks) -> str:
    """The User-Agent sent to arXiv: who asks, and where to read about it when configured."""
    return f"ai4mat/{__version__}" + (f" (+{links.repository_url})" if links.repository_url else "")


def template_values(config: Config | None, links: SiteLinks) -> dict:
    return {
        "title": config.title if config else DEFAULT_TITLE,
        "query": config.query if config else None,
        "site_url": links.site_url,
        "repository": links.repository,
        "repository_url": links.repository_url,
        "latest_download_url": links.latest_download_url,
    }


def render_metadata(raw: dict, values: dict) -> dict:
    """`raw` (metadata.yml as loaded) with every text holding a Jinja placeholder rendered.

    Texts under a key ending in `_html` are rendered with HTML escaping. A key whose text
    renders empty is left out (about_url without a repository). SQL is never rendered: no
    query text contains a placeholder, so values are never spliced into SQL.
    """
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    html_environment = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=True, keep_trailing_newline=True)

    def render(node, key: str | None):
        if isinstance(node, dict):
            rendered = {name: render(value, name) for name, value in node.items()}
            return {name: value for name, value in rendered.items() if value != "" or node[name] == ""}
        if isinstance(node, list):
            return [render(item, key) for item in node]
        if isinstance(node, str) and ("{{" in node or "{%" in node):
            if key == "sql":
                raise SiteError("metadata: a placeholder in a query's SQL; values are never spliced into SQL")
            chosen = html_environment if key and key.endswith("_html") else environment
            try:
                return chosen.from_string(node).render(values).strip()
            except jinja2.TemplateError as error:
                raise SiteError(f"metadata: cannot render {node[:60]!r}: {error}") from None
        return node

    return render(raw, None)


def load_rendered_metadata(metadata_path: str | os.PathLike, config: Config | None, environ: Mapping[str, str] = os.environ) -> dict:
    """metadata.yml at `metadata_path`, rendered for `config` (see render_metadata)."""
    try:
        raw = yaml.safe_load(Path(metadata_path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise SiteError(f"{metadata_path}: cannot read metadata ({error})") from None
    return render_metadata(raw, template_values(config, site_links(config, environ)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harvest.site_config", description="Print the site's metadata rendered for a config, as JSON.")
    parser.add_argument("what", choices=["metadata"])
    parser.add_argument("--config", default="config.json")
    parser.add_argument("--metadata", default=str(Path(__file__).resolve().parent.parent / "metadata.yml"))
    args = parser.parse_args(argv)
    try:
        metadata = load_rendered_metadata(args.metadata, load_config(args.config))
    except (ConfigError, SiteError) as error:
        print(f"site: {error}", file=sys.stderr)
        return 1
    json.dump(metadata, sys.stdout, ensure_ascii=False, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())

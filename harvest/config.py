"""Read and check `config.json` (the original tracker's file, kept compatible)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .files import LocalFileError, read_small_file

DEFAULT_API_URL = "https://export.arxiv.org/api/query"
DEFAULT_TITLE = "ArXiv Daily – AI4MAT"
# GitHub's owner/name: letters, digits, - _ . (no spaces, no slashes inside either part).
_REPOSITORY = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*/[A-Za-z0-9._-]+")
# A config is a few hundred bytes; anything near this is not one.
MAX_CONFIG_BYTES = 1_000_000
# Keys of the original tracker that mean nothing here: accepted, announced, ignored.
IGNORED_KEYS = ("output_dir", "known_papers_file")


class ConfigError(Exception):
    """The configuration cannot be used; the message says what to fix."""


class ConfigNotFound(ConfigError):
    """There is no config file at the path (the caller may say how to create one)."""


@dataclass(frozen=True)
class Config:
    query: str
    max_results: int | None = None
    api_url: str = DEFAULT_API_URL
    delay_seconds: float = 3.0
    timezone: str = "Asia/Singapore"
    timezone_label: str = "SGT"
    readme_max_papers: int = 100
    page_size: int = 2000
    dataset_url: str | None = None  # the published site, e.g. https://example.org/
    repository: str | None = None  # owner/name on GitHub; else $GITHUB_REPOSITORY (harvest.site_config)
    title: str = DEFAULT_TITLE  # the site's and feeds' title
    vocabulary: str | None = None  # a user vocabulary file, extending the packaged one
    readme_tags: bool = False  # add a **Tags:** line to each README entry
    notices: tuple[str, ...] = ()

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


# key -> (accepted types, description used in the error message)
_TYPES = {
    "query": ((str,), "a non-empty string"),
    "max_results": ((int,), "a positive integer"),
    "api_url": ((str,), "an http(s) URL"),
    "delay_seconds": ((int, float), "a number of seconds >= 0"),
    "timezone": ((str,), "an IANA time zone name such as Asia/Singapore"),
    "timezone_label": ((str,), "a short string such as SGT"),
    "readme_max_papers": ((int,), "a positive integer"),
    "page_size": ((int,), "an integer from 1 to 2000 (arXiv's maximum per request)"),
    "dataset_url": ((str, type(None)), "the published Datasette's base URL (http or https), or null"),
    "repository": ((str, type(None)), "the GitHub repository as owner/name, or null"),
    "title": ((str,), "a non-empty string"),
    "vocabulary": ((str, type(None)), "the path of a JSON tag vocabulary (relative to the config file), or null"),
    "readme_tags": ((bool,), "true or false"),
}


def parse_config(raw: object, source: str = "config") -> Config:
    """Check a decoded config object and return a Config. Raises ConfigError naming the bad key."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a JSON object, got {type(raw).__name__}")
    if "query" not in raw:
        raise ConfigError(f'{source}: missing "query" (an arXiv search query, e.g. "cat:cond-mat.mtrl-sci")')
    values: dict = {}
    notices = []
    for key, value in raw.items():
        if key in IGNORED_KEYS:
            notices.append(f'{source}: "{key}" is a key of the original tracker and is ignored here')
            continue
        if key not in _TYPES:
            raise ConfigError(f'{source}: unknown key "{key}" (known: {", ".join(sorted(_TYPES))})')
        types, description = _TYPES[key]
        # bool is an int subclass; true is never a valid count.
        if isinstance(value, bool) and bool not in types or not isinstance(value, types):
            raise ConfigError(f'{source}: "{key}" must be {description}, got {json.dumps(value)}')
        values[key] = value
    if not values["query"].strip():
        raise ConfigError(f'{source}: "query" must be {_TYPES["query"][1]}')
    for key in ("max_results", "readme_max_papers"):
        if key in values and values[key] < 1:
            raise ConfigError(f'{source}: "{key}" must be {_TYPES[key][1]}, got {values[key]}')
    if not 1 <= values.get("page_size", 2000) <= 2000:
        raise ConfigError(f'{source}: "page_size" must be {_TYPES["page_size"][1]}, got {values["page_size"]}')
    if values.get("delay_seconds", 0) < 0:
        raise ConfigError(f'{source}: "delay_seconds" must be {_TYPES["delay_seconds"][1]}')
    if values.get("dataset_url") is not None and not values["dataset_url"].startswith(("http://", "https://")):
        raise ConfigError(f'{source}: "dataset_url" must be {_TYPES["dataset_url"][1]}, got {values["dataset_url"]!r}')
    if values.get("repository") is not None and not _REPOSITORY.fullmatch(values["repository"]):
        raise ConfigError(f'{source}: "repository" must be {_TYPES["repository"][1]}, got {values["repository"]!r}')
    if "title" in values and not values["title"].strip():
        raise ConfigError(f'{source}: "title" must be {_TYPES["title"][1]}')
    if not values.get("api_url", "https://").startswith(("http://", "https://")):
        raise ConfigError(f'{source}: "api_url" must be {_TYPES["api_url"][1]}, got {values["api_url"]!r}')
    if "timezone" in values:
        try:
            ZoneInfo(values["timezone"])
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f'{source}: unknown time zone "{values["timezone"]}" (use an IANA name such as Asia/Singapore)')
    if "delay_seconds" in values:
        values["delay_seconds"] = float(values["delay_seconds"])
    return Config(**values, notices=tuple(notices))


def load_config(path: str | os.PathLike) -> Config:
    """Read `path` as JSON and check it. Raises ConfigError with one line a user can act on."""
    path = Path(path)
    try:
        text = read_small_file(path, max_bytes=MAX_CONFIG_BYTES).decode("utf-8")
    except FileNotFoundError:
        raise ConfigNotFound(f"{path}: config file not found")
    except LocalFileError as error:
        raise ConfigError(f"{path}: {error}")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read config file ({error})")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path}: invalid JSON at line {error.lineno} column {error.colno}: {error.msg}")
    config = parse_config(raw, str(path))
    if config.vocabulary is not None and not Path(config.vocabulary).is_absolute():
        # A relative vocabulary path means beside the config file, wherever ai4mat is run from.
        config = dataclasses.replace(config, vocabulary=str(path.parent / config.vocabulary))
    return config

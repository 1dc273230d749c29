"""Parse arXiv API Atom responses: bytes in, plain records out. No network, no database."""

from __future__ import annotations

import logging
import re
import time
import xml.sax
from dataclasses import dataclass, field

import feedparser

log = logging.getLogger(__name__)

# Every id form arXiv serves, anchored at the end of an abs URL:
#   2512.04045v1, 0704.0001 (2007: no version), cond-mat/0603304v2, math.GT/0309136v1,
#   solv-int/9901001v1 (the archive name itself contains a "v").
ID_RE = re.compile(
    r"(?P<arxiv_id>\d{4}\.\d{4,5}|[a-z][a-z-]*(?:\.[A-Za-z-]+)?/\d{7})(?:v(?P<version>\d+))?/?$"
)


# C0 controls XML 1.0 forbids. One of them in one abstract would make the whole page "not
# well-formed" on every retry and every run; in UTF-8 these bytes occur only as themselves.
XML_ILLEGAL_BYTES = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]")
# The same characters, and surrogates (which crash feedparser), written as references: &#1; &#xD800;
CHAR_REF = re.compile(rb"&#(x[0-9a-fA-F]+|[0-9]+);")


def _xml_char(code: int) -> bool:
    return code in (0x9, 0xA, 0xD) or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD or 0x10000 <= code <= 0x10FFFF


def _drop_forbidden_ref(match: re.Match) -> bytes:
    number = match.group(1).lstrip(b"x0") or b"0"
    if len(number) > 8:  # beyond Unicode (and too long for int() to read safely)
        return b""
    code = int(number, 16) if match.group(1).startswith(b"x") else int(number)
    return match.group(0) if _xml_char(code) else b""


# arXiv papers reach a few dozen versions; SQLite integers end at 2**63. A larger number is
# not an arXiv id, and stored it would fail the whole run.
MAX_VERSION = 10_000
MAX_TOTAL_RESULTS = 2**31


class ParseError(Exception):
    """The body is not a usable arXiv Atom feed (truncated, HTML, not XML)."""


class ArxivAPIError(Exception):
    """arXiv answered with its error feed; the message is arXiv's own."""


@dataclass
class Feed:
    total_results: int
    start_index: int
    papers: list[dict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # why each broken entry was left out


def split_id(url_or_id: str) -> tuple[str, int | None]:
    """Split `http://arxiv.org/abs/cond-mat/0603304v2` (or a bare id) into ("cond-mat/0603304", 2).

    The version is None when the id carries none (the 2007 form). Raises ValueError on anything
    that is not an arXiv id.
    """
    match = ID_RE.search(url_or_id.strip())
    if not match:
        raise ValueError(f"not an arXiv id: {url_or_id!r}")
    version = match.group("version")
    return match.group("arxiv_id"), int(version) if version else None


def _iso(parsed: time.struct_time | None) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", parsed) if parsed else None


def _link(entry, *, rel: str | None = None, title: str | None = None) -> str | None:
    for link in entry.get("links", []):
        if rel is not None and link.get("rel") == rel and not link.get("title"):
            return link.get("href")
        if title is not None and link.get("title") == title:
            return link.get("href")
    return None


def _paper(entry) -> dict:
    abs_url = _link(entry, rel="alternate")
    arxiv_id, version = split_id(entry.id)
    if version is None and abs_url:
        # The oldest responses (2007) give entry ids without a version; the abs link has it.
        link_id, version = split_id(abs_url)
        if link_id != arxiv_id:
            raise ValueError(f"entry id {entry.id!r} and abs link {abs_url!r} disagree")
    if version is None:
        raise ValueError(f"no version in entry id {entry.id!r} nor in its abs link")
    if not 1 <= version <= MAX_VERSION:
        raise ValueError(f"implausible version {version} in entry id {entry.id!r}")
    categories = [tag["term"] for tag in entry.get("tags", []) if tag.get("term")]
    primary = entry.get("arxiv_primary_category", {}).get("term") or (categories[0] if categories else None)
    title = entry.get("title")
    summary = entry.get("summary")
    if title is None or summary is None:
        raise ValueError(f"entry {entry.id!r} has no title or no summary")
    return {
        "arxiv_id": arxiv_id,
        "version": version,
        "title": " ".join(title.split()),
        "summary": summary.strip(),
        "authors": [author.get("name", "") for author in entry.get("authors", [])],
        "primary_category": primary,
        "categories": categories,
        "published": _iso(entry.get("published_parsed")),
        "updated": _iso(entry.get("updated_parsed")),
        "comment": entry.get("arxiv_comment"),
        "journal_ref": entry.get("arxiv_journal_ref"),
        "doi": entry.get("arxiv_doi"),
        "abs_url": abs_url,
        "pdf_url": _link(entry, title="pdf"),
    }


def _is_error_entry(entry) -> bool:
    return "/api/errors" in entry.get("id", "") or (
        entry.get("title") == "Error" and "arxiv.org/abs/" not in entry.get("id", "")
    )


def _count(text) -> int | None:
    """A plausible count from the feed header (ASCII digits only: "²".isdigit() is True too)."""
    text = str(text or "").strip()
    if not re.fullmatch(r"[0-9]{1,10}", text) or int(text) > MAX_TOTAL_RESULTS:
        return None
    return int(text)


def parse_feed(body: bytes) -> Feed:
    """Parse one API response.

    Returns the page's papers in the order served; an entry that cannot be read is left out and
    its reason recorded in `skipped`. Raises ArxivAPIError for arXiv's error feed and ParseError
    for anything that is not a complete arXiv Atom feed.
    """
    body = CHAR_REF.sub(_drop_forbidden_ref, XML_ILLEGAL_BYTES.sub(b"", body))
    try:
        parsed = feedparser.parse(body)
    except Exception as error:  # untrusted bytes: whatever feedparser trips on is a bad response
        raise ParseError(f"response could not be parsed ({type(error).__name__}: {error})") from None
    if parsed.get("bozo") and isinstance(parsed.get("bozo_exception"), xml.sax.SAXException):
        raise ParseError(f"response is not well-formed XML ({parsed.bozo_exception})")
    for entry in parsed.entries:
        if _is_error_entry(entry):
            raise ArxivAPIError(" ".join(entry.get("summary", "unknown error").split()))
    total = _count(parsed.feed.get("opensearch_totalresults"))
    if total is None:
        raise ParseError("response is not an arXiv API feed (no opensearch:totalResults)")
    feed = Feed(total_results=total, start_index=_count(parsed.feed.get("opensearch_startindex")) or 0)
    for entry in parsed.entries:
        try:
            feed.papers.append(_paper(entry))
        except (ValueError, KeyError, AttributeError) as error:
            log.warning("skipping an unreadable entry: %s", error)
            feed.skipped.append(str(error))
    return feed

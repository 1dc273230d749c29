"""Parse arXiv API Atom responses: bytes in, plain records out. No network, no database."""

from __future__ import annotations

import datetime
import logging
import re
import xml.sax
from dataclasses import dataclass, field

import feedparser

# Re-exported: the harvester stores the keys that the site's lookups compare.
from .lookups import author_key, author_matches, author_surname_key, normalise_id  # noqa: F401

log = logging.getLogger(__name__)

# Every id form arXiv serves, as a whole: a bare id, or everything after `/abs/` in an abs URL
# (`.../abs/12603.00011v1` is not 2603.00011, whose digits it ends with):
#   2512.04045v1, 0704.0001 (2007: no version), cond-mat/0603304v2, math.GT/0309136v1,
#   solv-int/9901001v1 (the archive name itself contains a "v").
ID_RE = re.compile(
    r"(?:^|/abs/)(?P<arxiv_id>\d{4}\.\d{4,5}|[a-z][a-z-]*(?:\.[A-Za-z-]+)?/\d{7})(?:v(?P<version>\d+))?/?$"
)


# An arXiv category as the API writes it: archive, or archive.subject (cond-mat, cs.LG,
# cond-mat.mtrl-sci, physics.chem-ph, math-ph). The same <category> elements also carry the
# authors' MSC and ACM class codes (68T07, "I.2.6; J.2", "82C32 (Primary) 37M05 (Secondary)").
CATEGORY_RE = re.compile(r"[a-z][a-z-]*(?:\.[A-Za-z][A-Za-z-]*)?")
# Characters XML 1.0 forbids: C0 controls but tab, LF and CR, and U+FFFE / U+FFFF (surrogates
# cannot survive the UTF-8 decoding below). One of them in one abstract would make the whole
# page "not well-formed" on every retry and every run.
XML_ILLEGAL_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
# The same characters, and surrogates (which crash feedparser), written as references: &#1; &#xD800;
CHAR_REF = re.compile(r"&#(x[0-9a-fA-F]+|[0-9]+);")


def _xml_char(code: int) -> bool:
    return code in (0x9, 0xA, 0xD) or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD or 0x10000 <= code <= 0x10FFFF


def _drop_forbidden_ref(match: re.Match) -> str:
    number = match.group(1).lstrip("x0") or "0"
    if len(number) > 8:  # beyond Unicode (and too long for int() to read safely)
        return ""
    code = int(number, 16) if match.group(1).startswith("x") else int(number)
    return match.group(0) if _xml_char(code) else ""


def _clean_utf8(body: bytes) -> bytes:
    """`body` as valid UTF-8 holding only characters XML 1.0 allows.

    arXiv serves UTF-8. Left to itself, feedparser reads a page holding one invalid byte as
    another charset, and every non-ASCII character of every paper on it comes out garbled
    (`Schrödinger` as `SchrĂśdinger`). Here each invalid sequence (a stray byte, an encoded
    surrogate, an overlong form) becomes U+FFFD where it stands, so it damages only the text
    that held it.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = body.decode("utf-8", "replace")
        log.warning("response is not valid UTF-8: invalid bytes replaced with %d U+FFFD",
                    text.count("\ufffd") - body.count("\ufffd".encode()))
    return CHAR_REF.sub(_drop_forbidden_ref, XML_ILLEGAL_CHARS.sub("", text)).encode("utf-8")


def _iso(raw: str | None, field_name: str, entry_id: str) -> str | None:
    """arXiv's timestamp as `YYYY-MM-DDTHH:MM:SSZ` (UTC, four-digit year), or None with a warning
    when it is not a real moment (`0000-01-01`, February 30, 25 o'clock).

    Read from the text, not feedparser's struct: that one rolls February 30 over into March and
    keeps year 0, which time.strftime writes as `0`.
    """
    if raw is None or not raw.strip():
        return None
    try:
        moment = datetime.datetime.fromisoformat(raw.strip())
        if moment.tzinfo is not None:  # arXiv writes Z; a naive time is taken as UTC, as feedparser does
            moment = moment.astimezone(datetime.timezone.utc)
    except (ValueError, OverflowError):
        log.warning("entry %s: %s %r is not a date; stored as null", entry_id, field_name, raw)
        return None
    return (f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
            f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}Z")


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


def split_categories(terms) -> tuple[list[str], list[str]]:
    """Split a paper's <category> terms into (arXiv categories, MSC/ACM class codes), in order.

    Each class term is kept whole as served, inner whitespace collapsed ("I.2.6; J.2").
    """
    categories, classifications = [], []
    for term in terms:
        term = " ".join(str(term).split())
        if not term:
            continue
        (categories if CATEGORY_RE.fullmatch(term) else classifications).append(term)
    return categories, classifications


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
    categories, classifications = split_categories(tag["term"] for tag in entry.get("tags", []) if tag.get("term"))
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
        "classifications": classifications,
        "published": _iso(entry.get("published"), "published", entry.id),
        "updated": _iso(entry.get("updated"), "updated", entry.id),
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
    body = _clean_utf8(body)
    try:
        # The charset is stated, so feedparser never guesses another one.
        parsed = feedparser.parse(body, response_headers={"content-type": "application/atom+xml; charset=utf-8"})
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

"""Parse arXiv API Atom responses: bytes in, plain records out. No network, no database."""

from __future__ import annotations

import datetime
import logging
import re
import unicodedata
import xml.sax
from dataclasses import dataclass, field

import feedparser

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
# An id as a person writes it: the id at the end of an arXiv URL (abs, pdf, html, with or without
# a version and .pdf), with an "arXiv:" prefix, or bare; case and surrounding spaces forgiven.
_TYPED_ID_RE = re.compile(
    r"(?:^|/|arxiv:\s*)(?P<arxiv_id>\d{4}\.\d{4,5}|(?P<archive>[a-z][a-z-]*)(?:\.(?P<subject>[a-z-]+))?/(?P<number>\d{7}))"
    r"(?:v\d+)?(?:\.pdf)?/?$",
    re.IGNORECASE,
)


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


def normalise_id(text: str | None) -> str | None:
    """The bare arXiv id (no version) that `text` names, or `text` stripped when it names none.

    Accepts what people paste: `2604.14082v4`, `arXiv:2604.14082`, `https://arxiv.org/abs/2604.14082v4`,
    `arxiv.org/pdf/2604.14082v2.pdf`, `cond-mat/0102536v1`, `math.gt/0309136`. Text that is no
    id comes back stripped, so a lookup with it finds nothing rather than something else.
    """
    if text is None:
        return None
    text = str(text).strip()
    match = _TYPED_ID_RE.search(text.split("?")[0].split("#")[0])
    if not match:
        return text
    if match.group("number") is None:
        return match.group("arxiv_id")
    archive, subject = match.group("archive").lower(), match.group("subject")
    if subject is None:
        return f"{archive}/{match.group('number')}"
    # arXiv writes two-letter subject classes upper case (math.GT), longer ones lower (chem-ph).
    subject = subject.upper() if len(subject) == 2 else subject.lower()
    return f"{archive}.{subject}/{match.group('number')}"


# Name suffixes that are not a surname: "John Smith Jr." is found by "Smith".
_NAME_SUFFIXES = frozenset({"jr", "sr", "ii", "iii", "iv"})


def author_key(name: str | None) -> str:
    """An author name as lookups compare it: case-folded, accents stripped, punctuation as spaces,
    "Surname, Given" turned to "Given Surname", suffixes (Jr.) dropped; "" for no name.

    `author_key("Kedar  HIPPALGAONKAR") == author_key("Hippalgaonkar, Kedar") == "kedar hippalgaonkar"`.
    """
    if not name:
        return ""
    name = str(name)
    if name.count(",") == 1:
        surname, given = name.split(",")
        if given.strip().rstrip(".").lower() not in _NAME_SUFFIXES:
            name = f"{given} {surname}"
    decomposed = unicodedata.normalize("NFKD", name.casefold())
    plain = "".join(char for char in decomposed if not unicodedata.combining(char))
    words = [word.strip("-'") for word in re.split(r"[^\w'-]+", plain)]
    words = [word for word in words if word]
    while len(words) > 1 and words[-1] in _NAME_SUFFIXES:
        words.pop()
    return " ".join(words)


def author_surname_key(name: str | None) -> str:
    """The last word of `author_key(name)`: what a lookup by surname compares."""
    return author_key(name).rpartition(" ")[2]


def author_matches(name: str | None, query: str | None) -> bool:
    """Whether the author `name` is one the lookup `query` asks for.

    The surnames must agree (`author_surname_key`); when the query gives more than a surname,
    its first given name must agree with the author's, an initial standing for any name with
    that first letter ("K. Hippalgaonkar", "kedar hippalgaonkar").
    """
    name_words, query_words = author_key(name).split(), author_key(query).split()
    if not name_words or not query_words or name_words[-1] != query_words[-1]:
        return False
    if len(query_words) == 1:
        return True
    if len(name_words) == 1:
        return False
    wanted, given = query_words[0], name_words[0]
    if len(wanted) == 1 or len(given) == 1:
        return wanted[0] == given[0]
    return wanted == given


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

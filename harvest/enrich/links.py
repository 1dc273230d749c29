"""Links written in a paper's abstract or comment, each with the kind of thing it points to.

Pure functions: text in, records out. arXiv text writes URLs bare, inside LaTeX `\\url{..}` and
`\\href{..}{..}`, wrapped over a line break, glued to the next sentence (`..00104.Published in`)
or ending a sentence with a period; `find_links` undoes each of these.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

# Text longer than this is cut before matching: abstracts are ~2 KB, so nothing real is lost,
# and hostile input cannot make extraction slow.
MAX_TEXT = 20_000

_TLDS = (
    "org|com|io|net|edu|gov|ai|info|dev|app|ac|science|xyz|tech|cloud|site|page|uk|de|fr|cn|jp|"
    "ch|nl|eu|us|ca|au|kr|in|it|es|se|dk|fi|no|be|at|pl|ru|tw|sg|il|br|me"
)
_URL_CHARS = r"[^\s<>\"{}|\\^`\[\]]"
_LATEX_URL = re.compile(r"\\(?:url|href)\s*\{\s*([^{}]{1,2000}?)\s*\}")
_SCHEME_URL = re.compile(rf"(?:https?|ftp)://{_URL_CHARS}+", re.IGNORECASE)
_WWW_URL = re.compile(rf"(?<![\w@./-])www\.{_URL_CHARS}+", re.IGNORECASE)
# A bare host such as aflowlib.org or github.com/user/repo: lower-case TLD from a short list,
# not part of an e-mail address or a longer dotted word.
_BARE_URL = re.compile(
    rf"(?<![\w@./:-])(?:[A-Za-z0-9](?:[A-Za-z0-9-]{{0,62}}[A-Za-z0-9])?\.)+(?:{_TLDS})(?![\w-])(?:/{_URL_CHARS}*)?"
)
# Every bare URL holds one of these; most abstracts hold none, and this is ~40x cheaper to look for.
_TLD_AT_END = re.compile(rf"\.(?:{_TLDS})(?![\w-])")
# A sentence glued to the URL's end: "zenodo.10854500.Published in".
_GLUED_SENTENCE = re.compile(r"\.(?=[A-Z][a-z]+$)")
_TRAILING = ".,;:!?'\"*"
_WRAP_CONTINUATION = re.compile(rf"\n[ \t]*({_URL_CHARS}+)")

CODE_HOSTS = ("github.com", "gitlab.com", "bitbucket.org", "gitee.com", "codeocean.com", "sourceforge.net", "pypi.org")
DATA_HOSTS = (
    "zenodo.org", "figshare.com", "materialscloud.org", "nomad-lab.eu", "materialsproject.org",
    "datadryad.org", "dryad.org", "kaggle.com", "osf.io", "dataverse.harvard.edu", "mendeley.com",
    "jarvis.nist.gov", "oqmd.org", "icsd.fiz-karlsruhe.de", "crystallography.net",
    "catalysis-hub.org", "mpcontribs.org", "springernature.figshare.com",
)
# DOI prefixes of data repositories: Zenodo, Figshare, Dryad, Materials Cloud, PANGAEA, Mendeley Data.
DATA_DOI_PREFIXES = ("10.5281/", "10.6084/", "10.5061/", "10.24435/", "10.1594/", "10.17632/", "10.57760/", "10.7910/")

# Words just before a URL that say what it holds, for hosts that say nothing themselves.
_CONTEXT_DATA = re.compile(r"\b(?:data ?bases?|data ?sets?|data|repository of|repositories)\b", re.IGNORECASE)
_CONTEXT_CODE = re.compile(r"\b(?:code|codes|software|package|implementation|source|library|toolkit|program)\b", re.IGNORECASE)

_AVAILABLE = re.compile(
    r"\b(?:(?:source )?codes?|software|package|implementation|library|toolkit|data ?sets?|data|(?:trained|pre-?trained) models?|model weights|weights)"
    r"\b[^.,;]{0,50}?\b(?:are|is|will be|has been|have been|are made|is made) (?:also )?(?:publicly |freely |openly |now )?"
    r"(?:available|released|accessible|open[- ]sourced?)\b"
    r"|\bopen[- ]source(?:d)? (?:[\w-]+ ){0,3}(?:code|codes|software|package|implementation|library|toolkit|"
    r"framework|tool|suite|workflow|python|pipeline)\b"
    r"|\b(?:we|will) (?:publicly |openly )?(?:release|open-source|share)\b(?! date)"
    r"|\bopen release of\b"
    r"|\bgithub repositor(?:y|ies)\b|\bhugging ?face\b",
    re.IGNORECASE,
)
# Every match of _AVAILABLE holds one of these (case-folded); three in four abstracts hold none.
_AVAILABLE_WORDS = ("availab", "releas", "accessib", "open", "share", "github", "hugging")


@dataclass(frozen=True)
class Link:
    url: str
    kind: str  # code | data | model | web
    found_in: str  # the field it came from: summary | comment


def _strip_end(url: str) -> str:
    """Drop sentence punctuation and unbalanced closing brackets from a URL's end."""
    while url:
        last = url[-1]
        if last in _TRAILING:
            url = url[:-1]
        elif last in ")]}" and url.count(last) > url.count({")": "(", "]": "[", "}": "{"}[last]):
            url = url[:-1]
        else:
            break
    return url


def _incomplete(url: str) -> bool:
    """True when a URL that ends a line cannot be whole, so the next line continues it."""
    if url.endswith(("-", "_", "=", "?", "&", "%", "/.", "~")):
        return True
    parts = urlsplit(url if "://" in url else "https://" + url)
    segments = [segment for segment in parts.path.split("/") if segment]
    # A code-host link names a repository: a bare user or group ends mid-way.
    return parts.hostname in CODE_HOSTS and len(segments) < 2 and url.endswith("/")


def _clean(url: str) -> str:
    url = url.strip()
    match = _GLUED_SENTENCE.search(url)
    if match and "/" in url[: match.start()]:
        url = url[: match.start()]
    return _strip_end(url)


def host_of(url: str) -> str:
    """The URL's host, lower-cased, without `www.`."""
    host = urlsplit(url if "://" in url else "https://" + url).hostname or ""
    return host.removeprefix("www.")


def _host_is(host: str, domains: tuple[str, ...]) -> bool:
    return any(host == domain or host.endswith("." + domain) for domain in domains)


def link_kind(url: str, context: str = "") -> str:
    """code | data | model | web, from the URL's host and path, then from the words before it."""
    host = host_of(url)
    path = urlsplit(url if "://" in url else "https://" + url).path.lower()
    if host in ("huggingface.co", "hf.co"):
        if path.startswith("/datasets/"):
            return "data"
        if path.startswith("/spaces/") or path.count("/") < 2 and not path.strip("/"):
            return "web"
        return "model"
    if _host_is(host, CODE_HOSTS):
        return "code"
    if _host_is(host, DATA_HOSTS):
        return "data"
    if host in ("doi.org", "dx.doi.org") and path.lstrip("/").startswith(DATA_DOI_PREFIXES):
        return "data"
    if host.endswith((".github.io", ".gitlab.io", ".readthedocs.io")) or host in ("arxiv.org", "doi.org", "dx.doi.org"):
        return "web"
    # The same clause, just before the URL: "the database is available at ...".
    clause = re.split(r"[.;!?]\s|\(|\n\n", context[-160:])[-1]
    data, code = _CONTEXT_DATA.search(clause), _CONTEXT_CODE.search(clause)
    if code and not data:
        return "code"
    if data and not code:
        return "data"
    return "web"


def _candidates(text: str) -> list[tuple[int, str]]:
    """(position, raw URL) for every URL in the text, LaTeX-wrapped ones first."""
    found: list[tuple[int, str]] = []
    taken: list[tuple[int, int]] = []

    def add(start: int, end: int, url: str) -> None:
        if any(start < t_end and t_start < end for t_start, t_end in taken):
            return
        taken.append((start, end))
        found.append((start, url))

    # Each pattern runs only when the text holds what every one of its matches must: Python's
    # regex engine pays ~40 ns per character for a pattern that starts with a lookbehind.
    folded = text.casefold()  # what IGNORECASE matches, "ſ" and "K" included
    patterns = [
        pattern for pattern, needed in ((_SCHEME_URL, "://" in text), (_WWW_URL, "www." in folded),
                                        (_BARE_URL, _TLD_AT_END.search(text) is not None)) if needed
    ]
    for match in _LATEX_URL.finditer(text) if "\\" in text else ():
        # A line break inside the braces is wrapping; a quote or bracket ends the address.
        inner = re.match(f"{_URL_CHARS}*", re.sub(r"\s+", "", match.group(1))).group(0)
        add(match.start(), match.end(), inner)
    for pattern in patterns:
        for match in pattern.finditer(text):
            url, end = match.group(0), match.end()
            if pattern is _BARE_URL and "/" not in url and not url.islower():
                # "AFLOW.org", "H2O.ai": a capitalised bare name is the site's name used as a word.
                continue
            # Hard-wrapped text: a URL cut at a line end goes on with the next line.
            while _incomplete(url):
                more = _WRAP_CONTINUATION.match(text, end)
                if not more:
                    break
                url, end = url + more.group(1), more.end()
            add(match.start(), end, url)
    found.sort()
    return found


def find_links(text: str | None, found_in: str) -> list[Link]:
    """Every URL in `text`, cleaned of surrounding punctuation, in order of appearance, once each."""
    if not text:
        return []
    text = text[:MAX_TEXT]
    links, seen = [], set()
    for position, raw in _candidates(text):
        url = _clean(raw)
        if "." not in url or len(url) < 5 or url.lower() in seen:
            continue
        if not re.search(r"\.[A-Za-z]{2,}", host_of(url) or ""):
            continue
        seen.add(url.lower())
        links.append(Link(url, link_kind(url, text[max(0, position - 200) : position]), found_in))
    return links


def paper_links(summary: str | None, comment: str | None) -> list[Link]:
    """The links of the abstract then the comment; a URL in both is kept once, from the abstract."""
    links, seen = [], set()
    for link in find_links(summary, "summary") + find_links(comment, "comment"):
        key = normalise_url(link.url)
        if key not in seen:
            seen.add(key)
            links.append(link)
    return links


def normalise_url(url: str) -> str:
    """The URL without scheme, `www.` and trailing `/`, host lower-cased: the form links are compared in."""
    url = re.sub(r"^[a-z]+://", "", url.strip(), flags=re.IGNORECASE)
    host, slash, rest = url.partition("/")
    host = host.lower().removeprefix("www.")
    return (host + slash + rest).rstrip("/")


def code_available_no_url(summary: str | None, comment: str | None, links: list[Link]) -> bool:
    """True when the text says code or data is available yet gives no code, data or model link."""
    if any(link.kind in ("code", "data", "model") for link in links):
        return False
    text = f"{summary or ''}\n{comment or ''}"[:MAX_TEXT]
    folded = text.casefold()
    if not any(word in folded for word in _AVAILABLE_WORDS):
        return False
    return bool(_AVAILABLE.search(text))

"""How people write what the site looks up, and the keys it is stored under: pure functions.

Shared by the harvester (harvest.parse, harvest.store write the keys) and the site
(plugins/ai4mat_lookups.py registers them as SQL functions), so a stored key and a typed one
are always made by the same code. Standard library only: the published site loads this file
without the rest of the package (scripts/publish.sh ships it beside the plugins).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# A bare arXiv id as stored: YYMM.NNNN(N), or old-style archive[.SC]/YYMMNNN.
BARE_ID_RE = re.compile(r"\d{4}\.\d{4,5}|[a-z][a-z-]*(?:\.[A-Za-z-]+)?/\d{7}")
# An id as a person writes it: the id at the end of an arXiv URL (abs, pdf, html, with or without
# a version and .pdf), with an "arXiv:" prefix, or bare; case and surrounding spaces forgiven.
_TYPED_ID_RE = re.compile(
    r"(?:^|/|arxiv:\s*)(?P<arxiv_id>\d{4}\.\d{4,5}|(?P<archive>[a-z][a-z-]*)(?:\.(?P<subject>[a-z-]+))?/(?P<number>\d{7}))"
    r"(?:v\d+)?(?:\.pdf)?/?$",
    re.IGNORECASE,
)


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


# Cached: a lookup compares one query with every author of a surname, and names repeat.
@lru_cache(maxsize=100_000)
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

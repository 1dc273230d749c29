"""Datasette plugin for the AI4MAT dataset: relevance search, safe full-text queries, paper links.

Loaded with `datasette --plugins-dir plugins` (also by `datasette publish`), so it imports only
Datasette, the standard library and declared dependencies (wordllama and numpy, optional: without
them search is lexical only). The tagging rules come from the file itself (`tag_vocabulary`), not
from the harvest package, which the published site does not install; without that table, search
ranks without tags.
"""

from __future__ import annotations

import html
import importlib.util
import itertools
import json
import math
import os
import re
import urllib.parse
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

try:
    from harvest import minilm
except ImportError:
    # The published image installs Datasette and the plugins' pins, not ai4mat: scripts/publish.sh
    # ships harvest/minilm.py (numpy, safetensors, tokenizers) and the model's files beside this file.
    try:
        _spec = importlib.util.spec_from_file_location("ai4mat_minilm", Path(__file__).with_name("ai4mat_minilm.py"))
        minilm = importlib.util.module_from_spec(_spec)
        _spec.loader.exec_module(minilm)
    except (ImportError, OSError):
        minilm = None
from datasette import hookimpl
from datasette.utils import tilde_encode
from markupsafe import Markup

# Runs of letters and digits (the unicode61 tokenizer's idea of a word), optionally joined
# by - . / ' so "crystal-structure" and "Li-ion" stay one phrase.
_TERM = re.compile(r"\w+(?:[-./']\w+)*\*?")
NO_MATCH = '""'  # an empty phrase: a valid FTS5 query that matches nothing
MAX_TERMS = 16
# Short prefixes (ma*) expand to thousands of terms and take seconds; below this, * is ignored.
MIN_PREFIX = 4
_MARKED = re.compile(r"\*\*(.+?)\*\*", re.S)
_WORD_SPLIT = re.compile(r"(\w+)")
_ASCII_WORD_SPLIT = re.compile(r"(\w+)", re.ASCII)
SYNONYMS_PATH = Path(__file__).with_name("ai4mat_synonyms.json")

# Words that carry no topic in a researcher's query. Domain words (model, material, learning)
# are not here: they are dropped, when at all, by their document frequency in the dataset.
STOP_WORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further had
has have having he her here hers how i if in into is it its itself just let me more most my no nor
not of off on once only or other our out over own same she should so some such than that the their
them then there these they this those through to too under until up very was we were what when
where which while who whom why will with would you your yours within without across among like
e.g i.e etc vs versus
""".split())
# Chemical element symbols as written ("Al", "Ga", "Sr", "Te", "Ir"): such a word is the element,
# not the acronym spelled the same in capitals (AL active learning, GA genetic algorithm, SR
# symbolic regression, TE thermoelectric, IR infrared). Tc is left out: in materials papers it is
# the critical temperature, which is how the synonyms read it.
ELEMENT_SYMBOLS = frozenset("""
H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As Se Br Kr
Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm Eu Gd Tb Dy Ho Er Tm Yb
Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U Np Pu Am Cm Bk Cf Es Fm Md No Lr
Rf Db Sg Bh Hs Mt Ds Rg Cn Nh Fl Mc Lv Ts Og
""".split()) - {"Tc"}
ENGLISH_PREFIXES = frozenset({"Co", "Re", "Bi"})
_ELEMENTS_LOWER = frozenset(symbol.lower() for symbol in ELEMENT_SYMBOLS)
# Words researchers add around a topic ("a new method using..."): dropped when the query has
# other words, searched when it has nothing else.
FILLER_WORDS = frozenset("""
paper papers study studies using use used based new novel approach approaches method methods
find finding show shows given many work works toward towards one two
""".split())
# A term in more than this share of the papers, and in more than COMMON_PAPERS papers, is
# dropped from ranking (unless every term is): it barely moves bm25, and scoring its matches is
# what makes common-word queries slow at a million papers. Tiny files rank every word.
COMMON_SHARE = 0.3
COMMON_PAPERS = 100
# At most this many matches are scored by bm25 (see Searcher.plan): 1.4-2.2 us each at a million
# papers, so about 33 ms. 50,000 let one long query take 100 ms of a page's 100 ms budget; at
# 25,000, "fine-tuned language model that tells which phases..." ("fine": 16,960 matches) took
# 30-45 ms of a 70-90 ms page.
MATCH_BUDGET = 15_000
CANDIDATES = 100  # lexical candidates re-ranked with embeddings
SHOWN = 50
RRF_K = 20
PRF_DOCS = 5
TITLE_WEIGHT = 3.0
LEXICAL_WEIGHT = 0.7
PRF_WEIGHT = 0.5
PRF_ROUNDS = 1
PLAIN_WEIGHT = 0.5
# Papers carrying the tags the query names (the tagging vocabulary's rules, run on the query as on
# a title) gain up to TAG_WEIGHT / (RRF_K + 1) times the share of the query's words the tags
# describe: tags describing all of it are worth one more voter, as strong as the meaning's.
TAG_WEIGHT = 1.0
# The same for the element symbols the query names ("Li", "Pt"), from the papers' extracted elements.
ELEMENT_WEIGHT = 1.0
# A description in the user's own words spreads bm25 over many words, each matching on its own;
# the embedding reads it whole, so from LONG_QUERY words on, meaning counts more.
LONG_QUERY = 5
LONG_DENSE_WEIGHT = 1.5
BIGRAMS = True
SNIPPET_TOKENS = 24


def fts_query(text: str | None) -> str:
    """Turn free text into an FTS5 query that never raises a syntax error.

    Every word becomes a double-quoted phrase (so AND, OR, NEAR, column names, quotes and
    brackets are plain text), all of them required; a trailing `*` after at least MIN_PREFIX
    characters keeps its meaning as a prefix search (`diffus*`). Text without any word gives a
    query that matches nothing.
    """
    if not text:
        return NO_MATCH
    terms = []
    for term in _TERM.findall(str(text))[:MAX_TERMS]:
        word = term.rstrip("*")
        prefix = term.endswith("*") and len(word) >= MIN_PREFIX
        terms.append(_phrase(word, prefix))
    return " ".join(terms) or NO_MATCH


def _phrase(text: str, prefix: bool = False) -> str:
    return '"' + text.replace('"', '""') + '"' + ("*" if prefix else "")


# ---------------------------------------------------------------- parsing a researcher's query


@lru_cache(maxsize=1)
def synonyms() -> dict[tuple[str, ...], tuple[str, ...]]:
    """Each term's word tuple -> every term it stands for (itself first), from ai4mat_synonyms.json."""
    index: dict[tuple[str, ...], list[str]] = {}
    for group in json.loads(SYNONYMS_PATH.read_text(encoding="utf-8"))["groups"]:
        for term in group:
            alternatives = index.setdefault(tuple(_singular(word) for word in _words(term)), [term])
            alternatives += [other for other in group if other not in alternatives]
    return {key: tuple(value) for key, value in index.items()}


@lru_cache(maxsize=100_000)
def _stem(word: str) -> str:
    """Porter stem (the FTS index's tokenizer) where snowballstemmer is installed, else plurals folded."""
    stemmer = _stemmer()
    return stemmer.stemWord(word) if stemmer is not None else _singular(word)


@lru_cache(maxsize=1)
def _stemmer():
    try:
        import snowballstemmer
    except ImportError:
        return None
    return snowballstemmer.stemmer("porter")


def _shortest(terms: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The terms without those that contain another (as a word sequence, plurals folded).

    bm25 scores each phrase of an OR on its own: "large language model" next to "language
    model" would count one mention twice.
    """
    keys = [tuple(_singular(word) for word in _words(term)) for term in terms]
    kept = []
    for key in keys:
        if key in kept:
            continue
        if any(other != key and _contains(key, other) for other in keys):
            continue
        kept.append(key)
    return kept


def _singular(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def _contains(longer: tuple[str, ...], shorter: tuple[str, ...]) -> bool:
    return len(shorter) < len(longer) and any(
        longer[start : start + len(shorter)] == shorter for start in range(len(longer) - len(shorter) + 1)
    )


def _words(text: str) -> tuple[str, ...]:
    return tuple(word for word in re.split(r"[\s\-/]+", text.lower()) if word)


_QUOTED = re.compile(r'"([^"]*)"')
_NEGATED = re.compile(r"(?:(?<=\s)|^)(?:-|NOT\s+)(\w+(?:[-./']\w+)*)")


def parse_query(text: str | None) -> dict:
    """Split free text into what search looks for.

    Returns `groups` (each a list of alternative FTS5 phrases: a word or quoted phrase with its
    synonyms; stop words dropped), `required` (quoted phrases, which must match), `negatives`
    (`-word`, `NOT word`: papers with them are left out) and `text` (the words, for embedding).
    """
    text = str(text or "")[:500]
    required = [" ".join(_TERM.findall(phrase)) for phrase in _QUOTED.findall(text)]
    required = [phrase.replace("*", "") for phrase in required if phrase]
    text = _QUOTED.sub(" ", text)
    negatives = [term for term in _NEGATED.findall(text)]
    text = _NEGATED.sub(" ", text)
    groups: list[list[str]] = [[_phrase(phrase)] for phrase in required]
    typed: list[str] = [_phrase(phrase) for phrase in required]
    terms = _TERM.findall(text)[:MAX_TERMS]
    index = synonyms()
    words: list[tuple[str, bool]] = []  # (word, prefix)
    elements: set[int] = set()  # positions of words typed as a chemical element's symbol
    symbols: list[str] = []  # those symbols ("Li", "Pt")
    for term in terms:
        prefix = term.endswith("*") and len(term.rstrip("*")) >= MIN_PREFIX
        typed_parts = [part for part in re.split(r"[\s\-/.']+", term.rstrip("*")) if part]
        elements.update(len(words) + i for i, part in enumerate(typed_parts) if part in ELEMENT_SYMBOLS)
        # Symbols that are also English words or prefixes ("In situ", "As", "Co-design",
        # "Re-examining") are not taken as elements to favour.
        symbols += [
            part for i, part in enumerate(typed_parts)
            if part in ELEMENT_SYMBOLS and part.lower() not in STOP_WORDS
            and not (i == 0 and len(typed_parts) > 1 and part in ENGLISH_PREFIXES)
        ]
        parts = [part.lower() for part in typed_parts]
        words += [(part, prefix and i == len(parts) - 1) for i, part in enumerate(parts)]
    position = 0
    while position < len(words):
        for size in range(min(6, len(words) - position), 0, -1):
            key = tuple(word for word, _ in words[position : position + size])
            folded = tuple(_singular(word) for word in key)
            if size == 1 and position in elements:
                continue  # "Al" is aluminium, "AL" active learning: an element is never expanded
            if folded in index and not words[position + size - 1][1]:
                # An acronym spelled like an element ("al", "ga", "te") matches the element in any
                # case: it is searched only when typed, never as another term's expansion.
                groups.append([
                    _phrase(" ".join(alternative)) for alternative in _shortest(index[folded])
                    if alternative == folded or " ".join(alternative) not in _ELEMENTS_LOWER
                ])
                typed.append(_phrase(" ".join(key)))
                position += size
                break
        else:
            word, prefix = words[position]
            if word not in STOP_WORDS:
                groups.append([_phrase(word, prefix)])
                typed.append(_phrase(word, prefix))
            position += 1
    fillers = [group for group in groups if group[0].strip('"*') in FILLER_WORDS]
    if len(fillers) < len(groups):
        typed = [t for g, t in zip(groups, typed) if g not in fillers]
        groups = [g for g in groups if g not in fillers]
    # Adjacent typed words also count as a phrase: a paper that says "target band gap" or
    # "powder diffraction" as written outranks one with the words scattered.
    content = [(word, prefix) for word, prefix in words]
    for (first, p1), (second, p2) in zip(content, content[1:]):
        if BIGRAMS and not p1 and not p2 and not {first, second} & (STOP_WORDS | FILLER_WORDS):
            groups.append([_phrase(first + " " + second)])
            typed.append(_phrase(first + " " + second))
    unique, unique_typed = [], []
    for group, as_typed in zip(groups, typed):
        if group not in unique:
            unique.append(group)
            unique_typed.append(as_typed)
    plain = " ".join(term.rstrip("*") for term in terms) + " " + " ".join(required)
    return {"groups": unique, "typed": unique_typed, "required": [_phrase(p) for p in required], "negatives": [_phrase(n) for n in negatives], "text": plain.strip(),
            "elements": list(dict.fromkeys(symbols))}


def _any(phrases: list[str]) -> str:
    return phrases[0] if len(phrases) == 1 else "(" + " OR ".join(phrases) + ")"


def left_out(parsed: dict) -> str | None:
    """For a parsed query of only words to leave out (`-polymer`, `NOT polymer`), the FTS5 query
    of those words (the papers to leave out); for any other query, None."""
    if parsed["groups"] or not parsed["negatives"]:
        return None
    return _any(parsed["negatives"])


def table_search_query(text: str | None) -> str:
    """The papers table's `?_search=` as an FTS5 query: `fts_query`'s words (every one
    required, `diffus*` a prefix), with papers having a `-word` or `NOT word` left out.

    Like `fts_query` it never raises a syntax error; with nothing but negated words it matches
    nothing (FTS5 cannot list every paper without a word).
    """
    text = str(text or "")
    negatives = _NEGATED.findall(text)
    wanted = fts_query(_NEGATED.sub(" ", text))
    if not negatives or wanted == NO_MATCH:
        return wanted
    return f"{wanted} NOT {_any([_phrase(word) for word in dict.fromkeys(negatives)])}"


# ---------------------------------------------------------------- ranking


@lru_cache(maxsize=1)
def _embedder():
    """WordLlama from the files in its wheel (never downloaded), or None where it is not installed."""
    try:
        import numpy  # noqa: F401
        import wordllama
        from wordllama import WordLlama
    except ImportError:
        return None
    package = Path(wordllama.__file__).parent
    cache = Path(tempfile.mkdtemp(prefix="ai4mat-wordllama-"))
    try:
        for folder, name in (("tokenizers", "l2_supercat_tokenizer_config.json"), ("weights", "l2_supercat_256.safetensors")):
            (cache / folder).mkdir()
            shutil.copy(package / folder / name, cache / folder / name)
        return WordLlama.load(cache_dir=cache, disable_download=True)
    except Exception:  # a broken install must not take search down: fall back to lexical
        return None
    finally:
        shutil.rmtree(cache, ignore_errors=True)


@lru_cache(maxsize=1)
def _minilm_encoder():
    """all-MiniLM-L6-v2 (harvest.minilm), or None where it or numpy is not installed or its files
    are not the official ones (search then ranks without it; decided once, not at every search)."""
    if minilm is None:
        return None
    try:
        return minilm.encoder()
    except Exception:  # a damaged model must not take search down
        return None


@lru_cache(maxsize=1000)
def _minilm_query(text: str):
    return _minilm_encoder().encode([text])[0]


# Word counts and query plans, shared by every connection to one file in one state: Datasette
# opens a connection per SQL thread, and each counting for itself made a query's first request
# on each of them slow (at a million papers, HTML search p95 147 ms against p50 62 ms). A file's
# state is the size and modification time of it and its -wal: a commit starts afresh.
_SHARED: dict[str, tuple[tuple, dict]] = {}


def _file_state(path: str) -> tuple:
    state = []
    for name in (path, path + "-wal"):
        try:
            found = os.stat(name)
            state.append((found.st_size, found.st_mtime_ns))
        except OSError:
            state.append(None)
    return tuple(state)


class _Marks(dict):
    """lower-cased word -> whether the snippet marks it: its stem is one of `whole` or it starts
    with one of `prefixes`. Filled as words are first seen, so a page's snippets stem each distinct
    word once."""

    def __init__(self, whole: set[str], prefixes: tuple[str, ...]):
        super().__init__()
        self.whole, self.prefixes = whole, prefixes

    def __missing__(self, word: str) -> bool:
        if len(self) > 100_000:
            self.clear()
        marked = self[word] = _stem(word) in self.whole or word.startswith(self.prefixes)
        return marked


class Searcher:
    """Ranks papers for free text on one SQLite connection (Datasette opens one per thread)."""

    def __init__(self, conn):
        self.conn = conn
        self.tables: dict[str, bool] = {}  # which tables the file has (see has_table)
        self.rules: list[tuple[str, re.Pattern]] | None = None
        self.path = next((row[2] for row in conn.execute("pragma database_list") if row[1] == "main"), "") or ""
        self.own: dict = {}  # an in-memory database's caches: its own

    def cache(self) -> dict:
        """`{"counts": {...}, "plans": {...}, "papers": n}` for the file's current state."""
        if not self.path:
            return self.own
        state = _file_state(self.path)
        kept = _SHARED.get(self.path)
        if kept is None or kept[0] != state:
            kept = _SHARED[self.path] = (state, {})
        return kept[1]

    def count(self, expression: str) -> int:
        counts = self.cache().setdefault("counts", {})
        if expression not in counts:
            if len(counts) > 10_000:
                counts.clear()
            (counts[expression],) = self.conn.execute(
                "select count(*) from papers_fts where papers_fts match ?", [expression]
            ).fetchone()
        return counts[expression]

    def plan(self, text: str | None) -> dict:
        """The FTS5 expression to rank with (very common groups dropped) and the parsed query."""
        key = str(text or "")
        cache = self.cache()
        plans = cache.setdefault("plans", {})
        if key in plans:
            return plans[key]
        parsed = parse_query(text)
        if "papers" not in cache:
            cache["papers"] = self.conn.execute("select coalesce(max(rowid), 0) from papers").fetchone()[0] or 1
        papers = cache["papers"]
        # Which groups rank: each alternative's match count is estimated from its rarest word
        # (one cached doclist count per word; phrases are never counted). Alternatives in most
        # papers are dropped (they barely move bm25); then groups join, rarest first, while the
        # matches bm25 must score stay within MATCH_BUDGET: the cost bound at a million papers.
        common = max(COMMON_SHARE * papers, COMMON_PAPERS)
        ranked_groups = []
        for group, as_typed in zip(parsed["groups"], parsed["typed"]):
            estimates = {alternative: self.estimate(alternative) for alternative in group}
            kept = [a for a in group if 0 < estimates[a] <= common]
            if kept:
                ranked_groups.append((sum(estimates[a] for a in kept), kept, as_typed, estimates.get(as_typed, self.estimate(as_typed))))
        ranked_groups.sort(key=lambda item: item[0])
        chosen, total = [], 0
        for estimate, kept, as_typed, typed_estimate in ranked_groups:
            if total + estimate <= MATCH_BUDGET:
                chosen.append((kept, as_typed, typed_estimate))
                total += estimate
        newest = False
        if not chosen:
            # Every word is in most papers: the rarest word ranks alone, if bm25 can afford it.
            alternatives = sorted((self.estimate(a), a) for group in parsed["groups"] for a in group)
            alternatives = [(e, a) for e, a in alternatives if 0 < e <= MATCH_BUDGET]
            if alternatives:
                chosen = [([alternatives[0][1]], alternatives[0][1], alternatives[0][0])]
                common = MATCH_BUDGET
        if chosen:
            match = " OR ".join(_any(kept) for kept, _, _ in chosen)
            plain = " OR ".join(as_typed for _, as_typed, e in chosen if 0 < e <= common)
        else:
            # Every word is too common to rank all its matches: the newest papers with all the
            # words (else with the rarest one) are the candidates, ordered by meaning below.
            alternatives = [(self.estimate(a), a) for group in parsed["groups"] for a in group]
            alternatives = [(e, a) for e, a in alternatives if e]
            match = plain = min(alternatives)[1] if alternatives else ""
            newest = bool(alternatives)
            # Words, not phrases: checking positions of common words costs as much as ranking.
            words = {}
            for as_typed in parsed["typed"]:
                for word in re.findall(r"\w+", as_typed.rstrip("*")):
                    words.setdefault(word.lower(), False)
                if as_typed.endswith("*"):
                    words[word.lower()] = True
            together = " AND ".join(_phrase(word, prefix) for word, prefix in words.items())
            if len(words) > 1 and self.lexical(self._combine(together, parsed), newest=True):
                match = plain = together
        plan = {**parsed, "match": self._combine(match, parsed), "plain": self._combine(plain or match, parsed), "newest": newest}
        if len(plans) > 1000:
            plans.clear()
        plans[key] = plan
        return plan

    @staticmethod
    def _combine(match: str, parsed: dict) -> str:
        """`match` with the quoted phrases required and the negated words excluded."""
        if match and parsed["required"]:
            match = " AND ".join(parsed["required"]) + " AND (" + match + ")"
        if match and parsed["negatives"]:
            match = "(" + match + ") NOT " + _any(parsed["negatives"])
        return match or NO_MATCH

    def estimate(self, phrase: str) -> int:
        """At least the papers `phrase` matches: its rarest word's count (prefixes: counted)."""
        if phrase.endswith("*"):
            return self.count(phrase)
        words = re.findall(r"\w+", phrase)
        return min((self.count(_phrase(word)) for word in words), default=0)

    def lexical(self, match: str, newest: bool = False) -> list[tuple[int, float]]:
        if newest:
            return self.conn.execute(
                "select rowid, 0.0 from papers_fts where papers_fts match ? order by rowid desc limit ?", [match, CANDIDATES]
            ).fetchall()
        return self.conn.execute(
            f"select rowid, bm25(papers_fts, {TITLE_WEIGHT}, 1.0) as score from papers_fts "
            "where papers_fts match ? order by score, rowid desc limit ?",
            [match, CANDIDATES],
        ).fetchall()

    def search(self, text: str | None) -> str:
        """JSON [[rowid, relevance], ...], best first: bm25 candidates fused with embeddings."""
        plan = self.plan(text)
        only_left_out = left_out(plan)
        if only_left_out is not None:
            # Only words to leave out ("-polymer"): the newest papers without them.
            ranked = self.newest_without(only_left_out)
            return json.dumps([[rowid, 0.0] for rowid in ranked[:SHOWN]])
        if plan["required"] and not self.lexical(plan["match"], plan["newest"]):
            # A quoted phrase nobody wrote: answer with the words instead of nothing.
            plan = self.plan(str(text).replace('"', " "))
        hits = self.lexical(plan["match"], plan["newest"])
        # The words as typed rank on their own too, so a synonym never outweighs them.
        plain = self.lexical(plan["plain"]) if plan["plain"] != plan["match"] else hits
        ranked = self.rerank(plan["text"], hits, plain)
        ranked = self.favour_tags(plan["text"], ranked)
        ranked = self.favour_elements(plan["elements"], ranked)
        return json.dumps([[rowid, round(score, 6)] for rowid, score in ranked[:SHOWN]])

    def newest_without(self, negatives: str, window: int = 2_000) -> list[int]:
        """The newest papers (of the newest `window`) that `negatives` does not match, newest first.

        FTS5 cannot list the papers without a word; the window's matches are read by rowid range.
        """
        newest = [rowid for (rowid,) in self.conn.execute("select rowid from papers order by rowid desc limit ?", [window])]
        if not newest:
            return []
        left_out = {rowid for (rowid,) in self.conn.execute(
            "select rowid from papers_fts where papers_fts match ? and rowid >= ?", [negatives, newest[-1]]
        )}
        return [rowid for rowid in newest if rowid not in left_out]

    def rerank(self, text: str, hits: list[tuple[int, float]], plain: list[tuple[int, float]]) -> list[tuple[int, float]]:
        """Fuse the bm25 orders with embedding similarity to the query plus the top hits (RRF)."""
        typed = {rowid: PLAIN_WEIGHT / (RRF_K + rank) for rank, (rowid, _) in enumerate(plain, 1)}
        seen = {rowid for rowid, _ in hits}
        hits = hits + [(rowid, 0.0) for rowid, _ in plain if rowid not in seen]
        lexical = {rowid: LEXICAL_WEIGHT / (RRF_K + rank) + typed.get(rowid, 0) for rank, (rowid, _) in enumerate(hits, 1)}
        fused = dict(lexical)
        if len(hits) < 2 or not text:
            return sorted(fused.items(), key=lambda item: (-item[1], -item[0]))
        rowids = [rowid for rowid, _ in hits]
        marks = ",".join("?" * len(rowids))
        words = [word for word in _words(text) if word not in STOP_WORDS and word not in FILLER_WORDS]
        weight = LONG_DENSE_WEIGHT if len(words) >= LONG_QUERY else 1.0
        model = _embedder()
        if model is not None and self.has_table("paper_embeddings"):
            import numpy as np

            stored = dict(self.conn.execute(
                f"select p.rowid, e.embedding from papers p join paper_embeddings e on e.arxiv_id = p.arxiv_id where p.rowid in ({marks})",
                rowids,
            ).fetchall())
            have = [rowid for rowid in rowids if rowid in stored and len(stored[rowid]) == 256]
            if have:
                matrix = np.frombuffer(b"".join(stored[r] for r in have), dtype=np.int8).reshape(-1, 256).astype(np.float32)
                matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-9)
                query = np.asarray(model.embed([text], norm=True), dtype=np.float32)[0]
                query /= max(float(np.linalg.norm(query)), 1e-9)
                for _ in range(PRF_ROUNDS):
                    order = sorted(range(len(have)), key=lambda i: -fused[have[i]])[:PRF_DOCS]
                    feedback = matrix[order].mean(axis=0)
                    vector = query + PRF_WEIGHT * feedback / max(float(np.linalg.norm(feedback)), 1e-9)
                    similarity = matrix @ vector
                    dense = {have[index]: weight / (RRF_K + rank) for rank, index in enumerate(np.argsort(-similarity), 1)}
                    fused = {rowid: score + dense.get(rowid, 0) for rowid, score in lexical.items()}
        if len(words) >= LONG_QUERY:
            fused = self.read_in_context(text, rowids, marks, weight, fused)
        return sorted(fused.items(), key=lambda item: (-item[1], -item[0]))

    def read_in_context(self, text: str, rowids: list[int], marks: str, weight: float, fused: dict) -> dict:
        """`fused` plus one more voter for a description: the candidates ordered by all-MiniLM-L6-v2
        similarity to the query (a transformer reads words in context, where WordLlama averages
        them). Candidates not yet embedded (`ai4mat embed`) get no vote; without the model or
        the table, `fused` is returned as it is."""
        encoder = _minilm_encoder()
        if encoder is None or not self.has_table("paper_embeddings_minilm"):
            return fused
        stored = dict(self.conn.execute(
            f"select p.rowid, m.embedding from papers p join paper_embeddings_minilm m on m.arxiv_id = p.arxiv_id where p.rowid in ({marks})",
            rowids,
        ).fetchall())
        have = [rowid for rowid in rowids if len(stored.get(rowid) or b"") == minilm.DIM]
        if not have:
            return fused
        similarity = minilm.from_blobs(stored[rowid] for rowid in have) @ _minilm_query(text)
        order = sorted(range(len(have)), key=lambda index: -similarity[index])
        vote = {have[index]: weight / (RRF_K + rank) for rank, index in enumerate(order, 1)}
        return {rowid: score + vote.get(rowid, 0) for rowid, score in fused.items()}

    def query_tags(self, text: str) -> tuple[list[str], float]:
        """The tags whose vocabulary rules match the query's words (as a paper's title would), and
        the share of the query's words (stop and filler words aside) that those matches hold."""
        if self.rules is None:
            self.rules = []
            if self.has_table("tag_vocabulary"):
                for tag, pattern in self.conn.execute("select tag, pattern from tag_vocabulary order by rowid"):
                    try:
                        self.rules.append((tag, re.compile(pattern)))
                    except re.error:  # a rule this Python cannot compile only loses its boost
                        continue
        words = text.replace("*", "")
        tags, spans = [], []
        for tag, pattern in self.rules:
            found = [match.span() for match in pattern.finditer(words)]
            if found:
                tags.append(tag)
                spans += found
        content = [
            match.span() for match in re.finditer(r"\w+", words)
            if match.group().lower() not in STOP_WORDS and match.group().lower() not in FILLER_WORDS
        ]
        held = sum(any(start < end_ and start_ < end for start_, end_ in spans) for start, end in content)
        return list(dict.fromkeys(tags)), held / len(content) if content else 0.0

    def favour_tags(self, text: str, ranked: list[tuple[int, float]]) -> list[tuple[int, float]]:
        """`ranked` with each paper raised by the share of the query's tags it carries, weighed by
        the share of the query the tags describe: in "GB segregation MD" only "MD" is a tag
        (molecular dynamics), which must not outrank papers on grain-boundary segregation."""
        if len(ranked) < 2:
            return ranked
        tags, described = self.query_tags(text)
        return self.favour(ranked, "paper_tags", "tag", tags, TAG_WEIGHT * described)

    def favour_elements(self, symbols: list[str], ranked: list[tuple[int, float]]) -> list[tuple[int, float]]:
        """`ranked` with each paper raised by the share of the query's element symbols ("Li", "Pt")
        among its elements (`paper_elements`, also read from formulas such as LiCoO2, which the
        word index holds as one word)."""
        return self.favour(ranked, "paper_elements", "element", symbols, ELEMENT_WEIGHT)

    def favour(self, ranked, table: str, column: str, values: list[str], weight: float) -> list[tuple[int, float]]:
        """`ranked` with each paper gaining weight / (RRF_K + 1) times the share of `values` its
        rows of `table` hold: holding all of them is worth one more voter, ranking it first.

        One indexed look-up per candidate (papers by rowid, `table` by its key): the cost does
        not grow with the number of papers.
        """
        if not values or not weight or len(ranked) < 2 or not self.has_table(table):
            return ranked
        rowids = [rowid for rowid, _ in ranked]
        carried = dict(self.conn.execute(
            f"select p.rowid, count(distinct t.{column}) from papers p join {table} t on t.arxiv_id = p.arxiv_id "
            # +t.column: never read a value's papers from its index (a common tag is 30% of them).
            f"where p.rowid in ({','.join('?' * len(rowids))}) and +t.{column} in ({','.join('?' * len(values))}) "
            "group by p.rowid",
            rowids + values,
        ).fetchall())
        bonus = weight / (RRF_K + 1) / len(values)
        favoured = [(rowid, score + bonus * carried.get(rowid, 0)) for rowid, score in ranked]
        return sorted(favoured, key=lambda item: (-item[1], -item[0]))

    def has_table(self, name: str) -> bool:
        """Whether the file has table `name` (an older file may lack the enrichment tables)."""
        if name not in self.tables:
            self.tables[name] = self.conn.execute(
                "select 1 from sqlite_master where type = 'table' and name = ?", [name]
            ).fetchone() is not None
        return self.tables[name]

    def snippet(self, text: str | None, q: str | None) -> str | None:
        """The abstract around the query's words (SNIPPET_TOKENS words), each match between **.

        Done here rather than with FTS5's snippet(), which re-runs the whole match per row.
        """
        if not text:
            return text
        marks = self.snippet_terms(q)
        # One split gives every word and, from the lengths, where it starts: [gap, word, gap, ...].
        # Split lower-cased (ASCII text: the faster ASCII \w, the same words), unless lower-casing
        # changed the length (a rare letter): then the text as it is, and each word lower-cased.
        lowered_text = text.lower()
        if len(lowered_text) == len(text):
            pieces = (_ASCII_WORD_SPLIT if text.isascii() else _WORD_SPLIT).split(lowered_text)
            lowered = pieces[1::2]
        else:
            pieces = _WORD_SPLIT.split(text)
            lowered = [word.lower() for word in pieces[1::2]]
        if not lowered:
            return text
        starts = list(itertools.accumulate(map(len, pieces)))[0:-1:2]
        ends = [start + len(word) for start, word in zip(starts, pieces[1::2])]
        hits = [number for number, word in enumerate(lowered) if marks[word]]  # the words to mark, in order
        count = len(lowered)
        first, last = 0, count
        if count > SNIPPET_TOKENS:
            # The window of SNIPPET_TOKENS words holding the most marked words, earliest first.
            best, first, low = 0, 0, 0
            for high, token in enumerate(hits):
                while token - hits[low] >= SNIPPET_TOKENS:
                    low += 1
                if high - low + 1 > best:
                    best, first = high - low + 1, max(0, min(hits[low], count - SNIPPET_TOKENS))
            last = first + SNIPPET_TOKENS
        marked = set(hits)
        parts = ["…"] if first > 0 else []
        cursor = starts[first] if first > 0 else 0
        for number in range(first, last):
            if number in marked:
                end = ends[number]
                parts.append(text[cursor : starts[number]] + "**" + text[starts[number] : end] + "**")
                cursor = end
        tail_end = ends[last - 1] if last < count else len(text)
        parts.append(text[cursor:tail_end] + ("…" if last < count else ""))
        return "".join(parts)

    def snippet_terms(self, q: str | None) -> "_Marks":
        """Which lower-cased words the snippet marks for a query, cached with its plan."""
        plan = self.plan(q)
        if "snippet_terms" not in plan:
            whole, prefixes = set(), []
            for group in plan["groups"] + [plan["negatives"]]:
                for phrase in group:
                    prefix = phrase.endswith("*")
                    for word in _words(phrase.strip('*"').replace('""', '"')):
                        if prefix:
                            prefixes.append(word)
                        else:
                            whole.add(_stem(word))
            plan["snippet_terms"] = _Marks(whole, tuple(prefixes))
        return plan["snippet_terms"]


@hookimpl
def startup(datasette):
    # Load WordLlama (about 0.2 s) before the first search, not inside its SQL time limit.
    # all-MiniLM-L6-v2 (0.35 s with its hash check) loads at the first description searched:
    # most processes that start the site never search one.
    _embedder()
    synonyms()


# The table whose search box is sent to the canned query, and that query.
DATABASE, TABLE, SEARCH_QUERY = "ai4mat", "papers", "search"


# trylast: Datasette's own prepare_connection registers escape_fts, and the last one registered wins.
@hookimpl(trylast=True)
def prepare_connection(conn):
    searcher = Searcher(conn)
    conn.create_function("fts_query", 1, fts_query, deterministic=True)
    conn.create_function("ai4mat_search", 1, searcher.search)
    conn.create_function("ai4mat_match", 1, lambda text: searcher.plan(text)["match"])
    conn.create_function("ai4mat_left_out", 1, lambda text: left_out(searcher.plan(text)), deterministic=True)
    conn.create_function("ai4mat_snippet", 2, searcher.snippet)
    # The table view's ?_search= passes the text through escape_fts(), which quotes diffus* into
    # a phrase (matching nothing), requires "-polymer" and fails on a lone " with an fts5 syntax
    # error; give it the canned search's rules instead (?_searchmode=raw still takes FTS5 syntax).
    conn.create_function("escape_fts", 1, table_search_query, deterministic=True)


def search_redirect(datasette, path: str, query_string: bytes) -> str | None:
    """Where the papers page's search box goes: the canned search, or None to serve the page.

    Datasette's table view counts every match before showing 100 (4 s for a common word at a
    million papers); the canned search ranks the newest matches and answers in milliseconds.
    Only the HTML page is redirected: the JSON API keeps the table's search.
    """
    if DATABASE not in datasette.databases or path != datasette.urls.table(DATABASE, TABLE):
        return None  # another Datasette's databases: nothing of ours to redirect
    args = urllib.parse.parse_qsl(query_string.decode("utf-8", "replace"), keep_blank_values=True)
    searches = [value for key, value in args if key == "_search"]
    if not searches or ("_searchmode", "raw") in args:
        return None  # no search, or FTS5 syntax asked for: the canned search would drop it
    text = next((value for value in searches if value.strip()), None)
    if text is None:
        # An empty box submitted: every paper, as if nothing had been typed (not "matches nothing").
        kept = [(key, value) for key, value in args if key != "_search"]
        return path + ("?" + urllib.parse.urlencode(kept) if kept else "")
    return datasette.urls.query(DATABASE, SEARCH_QUERY) + "?" + urllib.parse.urlencode({"q": text})


@hookimpl
def asgi_wrapper(datasette):
    def wrap(app):
        async def search_box(scope, receive, send):
            if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
                location = search_redirect(datasette, scope["path"], scope.get("query_string", b""))
                if location is not None:
                    await send({
                        "type": "http.response.start",
                        "status": 302,
                        "headers": [(b"location", location.encode("utf-8")), (b"content-type", b"text/plain; charset=utf-8")],
                    })
                    await send({"type": "http.response.body", "body": b""})
                    return
            return await app(scope, receive, send)

        return search_box

    return wrap


@hookimpl
def render_cell(value, column, table, database, datasette):
    """In query results, link arxiv_id to the paper's page and show snippet highlights."""
    if table is not None or not isinstance(value, str):
        return None
    if column in ("arxiv_id", "related_id") and value:
        # Row URLs tilde-encode the key: cond-mat/0102536 -> cond-mat~2F0102536.
        # str(): Datasette's PrefixedUrlString calls dir(str) on each method html.escape calls.
        href = str(datasette.urls.row(database, "papers", tilde_encode(value)))
        return Markup(f'<a href="{html.escape(href)}">{html.escape(value)}</a>')
    if column == "snippet":
        # Escape first: abstracts are plain text and may contain "<script>".
        return Markup(_MARKED.sub(r"<mark>\1</mark>", html.escape(value)))
    return None

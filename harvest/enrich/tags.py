"""Material, method and task tags from a curated vocabulary (harvest/data/vocabulary.json).

Pure functions: text in, tags out. A vocabulary is data with a version; the version that tagged
a paper is stored beside its tags. Users may add their own vocabulary file (config `vocabulary`):
its tags are added to the packaged ones, and its patterns extend a packaged tag of the same name.
"""

from __future__ import annotations

import json
import re
from re import _constants as sre_constants, _parser as sre_parse  # the regex parser, to find literals
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

KINDS = ("material", "method", "task")
MAX_TEXT = 20_000  # abstracts are ~2 KB; longer input is cut so hostile text stays fast
DEFAULT_MIN_MENTIONS = 2


class VocabularyError(Exception):
    """A vocabulary file cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class TagRule:
    kind: str
    tag: str
    pattern: str  # every pattern of the tag as one regex (text), for anyone who wants to compile it
    min_mentions: int
    alternatives: tuple[str, ...] = ()  # the patterns as written


@dataclass(frozen=True)
class Vocabulary:
    version: str
    rules: tuple[TagRule, ...] = field(repr=False)
    matcher: "_WordStartMatcher" = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "matcher", _WordStartMatcher(self.rules))

    def tags(self, kind: str) -> list[str]:
        """The tag names of one kind, in vocabulary order."""
        return [rule.tag for rule in self.rules if rule.kind == kind]

@dataclass(frozen=True)
class Tag:
    kind: str
    tag: str
    mentions: int  # matches in title, abstract and comment
    in_title: bool


def _combined(patterns: list[str], source: str, tag: str) -> str:
    """Check a tag's patterns and join them into one regex (as text): acronyms case-sensitive.

    Patterns are only parsed here, not compiled: compiling ~700 of them twice made loading the
    vocabulary take ~0.9 s, which every daily run paid.
    """
    parts = []
    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern.strip():
            raise VocabularyError(f"{source}: tag {tag!r} has an empty or non-string pattern")
        try:
            parsed = sre_parse.parse(pattern)
        except re.error as error:
            raise VocabularyError(f"{source}: tag {tag!r}: bad pattern {pattern!r} ({error})") from None
        if parsed.getwidth()[0] == 0:
            raise VocabularyError(f"{source}: tag {tag!r}: pattern {pattern!r} matches empty text (it would tag every paper)")
        if _is_acronym(pattern):
            parts.append(f"(?:{pattern})")  # an acronym: GAN, not "gan"; GAs, not "gas"
        else:
            parts.append(f"(?i:{pattern})")
    return r"(?<![\w-])(?:" + "|".join(parts) + r")(?![\w])"


def parse_vocabulary(raw: object, source: str, *, base: Vocabulary | None = None) -> Vocabulary:
    """Check a decoded vocabulary and compile it; with `base`, extend that vocabulary."""
    if not isinstance(raw, dict) or not isinstance(raw.get("tags"), list):
        raise VocabularyError(f'{source}: expected a JSON object with a "tags" list')
    version = raw.get("version")
    if not isinstance(version, str) or not version.strip():
        raise VocabularyError(f'{source}: missing "version" (a string such as "1" or "2026.11.1")')
    entries: dict[tuple[str, str], dict] = {}
    order: list[tuple[str, str]] = []
    if base is not None:
        for rule in base.rules:
            order.append((rule.kind, rule.tag))
            entries[(rule.kind, rule.tag)] = {
                "pattern": rule.pattern, "min": rule.min_mentions, "extra": [], "base": list(rule.alternatives),
            }
    for entry in raw["tags"]:
        if not isinstance(entry, dict):
            raise VocabularyError(f"{source}: each tag must be an object with kind, tag and patterns")
        kind, tag, patterns = entry.get("kind"), entry.get("tag"), entry.get("patterns")
        if kind not in KINDS:
            raise VocabularyError(f"{source}: tag {tag!r}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
        if not isinstance(tag, str) or not tag.strip():
            raise VocabularyError(f"{source}: a {kind} tag has no name")
        if not isinstance(patterns, list) or not patterns:
            raise VocabularyError(f"{source}: tag {tag!r} needs a non-empty list of patterns")
        min_mentions = entry.get("min_mentions", DEFAULT_MIN_MENTIONS)
        if isinstance(min_mentions, bool) or not isinstance(min_mentions, int) or min_mentions < 1:
            raise VocabularyError(f"{source}: tag {tag!r}: min_mentions must be a positive integer")
        key = (kind, tag)
        if key in entries and base is not None and "patterns" not in entries[key]:
            entries[key]["extra"].extend(patterns)
            entries[key]["min"] = entry.get("min_mentions", entries[key]["min"])
            continue
        if key not in entries:
            order.append(key)
        entries[key] = {"patterns": patterns, "min": min_mentions}
    rules = []
    for kind, tag in order:
        entry = entries[(kind, tag)]
        if "patterns" in entry:
            alternatives = list(entry["patterns"])
        else:
            alternatives = entry["base"] + entry["extra"]
        pattern = _combined(alternatives, source, tag)
        rules.append(TagRule(kind, tag, pattern, entry["min"], tuple(alternatives)))
    if base is not None:
        version = f"{base.version}+{version}"
    return Vocabulary(version, tuple(rules))


_DEFAULT: Vocabulary | None = None


def default_vocabulary() -> Vocabulary:
    """The vocabulary shipped with the package, loaded once."""
    global _DEFAULT
    if _DEFAULT is None:
        text = resources.files("harvest").joinpath("data/vocabulary.json").read_text(encoding="utf-8")
        _DEFAULT = parse_vocabulary(json.loads(text), "harvest/data/vocabulary.json")
    return _DEFAULT


def load_vocabulary(path: str | Path | None) -> Vocabulary:
    """The packaged vocabulary, extended by the user's file at `path` if given."""
    if path is None:
        return default_vocabulary()
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise VocabularyError(f"{path}: vocabulary file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise VocabularyError(f"{path}: cannot read the vocabulary ({error})") from None
    except json.JSONDecodeError as error:
        raise VocabularyError(f"{path}: not valid JSON ({error.msg}, line {error.lineno})") from None
    return parse_vocabulary(raw, str(path), base=default_vocabulary())


def _clean(text: str) -> str:
    # LaTeX markup splits words ($\mathrm{MoS}_2$, \textit{ab initio}); drop it before matching.
    return re.sub(r"\\[a-zA-Z]+\s*|[${}]", " ", text[:MAX_TEXT])


def paper_tags(title: str | None, summary: str | None, comment: str | None, vocabulary: Vocabulary | None = None) -> list[Tag]:
    """The tags a paper is substantially about: a pattern in the title, or `min_mentions` matches
    in the abstract and comment. Ordered as in the vocabulary."""
    vocabulary = vocabulary or default_vocabulary()
    title = _clean(title or "")
    body = _clean(f"{summary or ''}\n{comment or ''}")
    in_title = vocabulary.matcher.count(title)
    mentions = vocabulary.matcher.count(body)
    tags = []
    for index, rule in enumerate(vocabulary.rules):
        count = mentions.get(index, 0)
        if index in in_title or count >= rule.min_mentions:
            tags.append(Tag(rule.kind, rule.tag, count + (index in in_title), index in in_title))
    return tags


def _is_acronym(pattern: str) -> bool:
    """Matched case-sensitively: a pattern with no lower-case letter (DFT, GANs?) or with a capital
    inside a word (GaN, SchNet, MXenes): "gas" is not GAs, "gan" not GaN. Other patterns
    ("Bayesian optimization", "perovskites?") match in any case."""
    letters = re.sub(r"\\[a-zA-Z]|\(\?:|\[[^]]*\]|s\?", "", pattern)
    return letters == letters.upper() or re.search(r"[A-Za-z][A-Z]", letters) is not None


def _leading_literal(pattern: str) -> str:
    """The literal text every match of `pattern` starts with ("" if it starts with a choice)."""
    literal = ""
    items = list(sre_parse.parse(pattern))
    while items and items[0][0] in (sre_constants.ASSERT, sre_constants.ASSERT_NOT) and items[0][1][0] < 0:
        items.pop(0)  # a lookbehind ("not after variational ") is checked by the compiled pattern
    for op, value in items:
        if op is sre_constants.LITERAL:
            literal += chr(value)
        elif op is sre_constants.SUBPATTERN and all(o is sre_constants.LITERAL for o, v in value[3]):
            literal += "".join(chr(v) for o, v in value[3])
        else:
            break
    return literal


KEY = 4  # letters of a pattern's leading literal that index it


class _WordStartMatcher:
    """Finds, in one pass over a text, which rules match and at how many places.

    Each pattern that starts with a literal is indexed by its first KEY letters and tried only at
    the word starts where one regex (a trie of those keys) says such a key begins; patterns that
    start with a choice are scanned the slow way. Scanning every rule's regex over the text took
    ~4.6 ms of CPU per real abstract; this takes ~0.25 ms (benchmarks/enrich.py).
    """

    def __init__(self, rules: tuple[TagRule, ...]):
        self.by_prefix: dict[str, list[tuple[int, str, re.Pattern, bool]]] = {}
        scanned: dict[int, list[str]] = {}
        for index, rule in enumerate(rules):
            for alternative in (part for pattern in rule.alternatives for part in _expand_leading_group(pattern)):
                acronym = _is_acronym(alternative)
                literal = _leading_literal(alternative)
                flags = 0 if acronym else re.IGNORECASE
                if len(literal) >= 2 and literal[0].isalnum():
                    compiled = re.compile(f"(?:{alternative})(?![\\w])", flags)
                    # Keyed by up to KEY letters: short buckets, so few patterns are tried per word.
                    key = literal[:KEY].lower()
                    self.by_prefix.setdefault(key, []).append(
                        (index, literal if acronym else literal.lower(), compiled, acronym)
                    )
                else:
                    scanned.setdefault(index, []).append(alternative)
        self.scanned = [
            (index, re.compile(_combined(alternatives, "vocabulary", str(index)))) for index, alternatives in scanned.items()
        ]
        # The starts regex captures the longest key at a word start; the keys found there are it
        # and those of its prefixes that are keys, longest first.
        self.with_prefixes: dict[str, list[tuple[int, str, re.Pattern, bool]]] = {
            key: [candidate for length in range(len(key), 0, -1) for candidate in self.by_prefix.get(key[:length], ())]
            for key in self.by_prefix
        }
        # One regex finds the word starts where some key begins (a trie, so sre branches on
        # letters instead of trying hundreds of alternatives): the Python loop visits only those.
        # Run on the lower-cased text; `\b` rather than a lookbehind `(?<![\w-])` lets the engine
        # skip ahead (2.5x faster); a key begins with a letter or digit, so `\b` there means "not
        # after a word character", and `count` drops the starts that follow a hyphen.
        self.starts = re.compile(r"\b(?=(" + trie_regex(list(self.by_prefix)) + "))")

    def count(self, text: str) -> dict[int, int]:
        """Rule index -> number of word starts in `text` where one of the rule's patterns matches."""
        lowered = text.lower()
        if len(lowered) != len(text):  # rare Unicode whose lower case is longer ("İ"): keep positions
            lowered = "".join(char if len(char.lower()) != 1 else char.lower() for char in text)
        hits: dict[int, set[int]] = {}
        with_prefixes = self.with_prefixes
        for start in self.starts.finditer(lowered):
            position = start.start()
            if position and lowered[position - 1] == "-":
                continue
            for index, literal, compiled, acronym in with_prefixes[start.group(1)]:
                if (text if acronym else lowered).startswith(literal, position) and compiled.match(text, position):
                    hits.setdefault(index, set()).add(position)
        for index, pattern in self.scanned:
            for match in pattern.finditer(text):
                hits.setdefault(index, set()).add(match.start())
        return {index: len(positions) for index, positions in hits.items()}


def trie_regex(words: list[str]) -> str:
    """A regex matching any of `words` (at least one character each), as a trie."""
    trie: dict = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def pattern(node: dict) -> str:
        ends = "" in node
        branches = [re.escape(char) + pattern(child) for char, child in sorted(node.items()) if char]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if ends else body

    return pattern(trie) or "(?!)"


def _expand_leading_group(pattern: str, depth: int = 0) -> list[str]:
    """`(?:a|b)rest` as [`arest`, `brest`], so each starts with a literal that can index it."""
    if not pattern.startswith("(?:") or depth > 2:
        return [pattern]
    level, parts, start, index = 0, [], 3, 3
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            index += 2
            continue
        if char == "[":
            index = pattern.index("]", index + 1) + 1
            continue
        if char == "(":
            level += 1
        elif char == ")":
            if level == 0:
                break
            level -= 1
        elif char == "|" and level == 0:
            parts.append(pattern[start:index])
            start = index + 1
        index += 1
    else:
        return [pattern]
    parts.append(pattern[start:index])
    rest = pattern[index + 1 :]
    if rest[:1] in ("?", "*", "+", "{"):
        return [pattern]  # an optional or repeated group: not a fixed start
    return [expanded for part in parts for expanded in _expand_leading_group(part + rest, depth + 1)]

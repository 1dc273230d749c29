"""Chemical formulas and element symbols mentioned in a paper's text.

Pure functions: text in, records out. Element data (symbols, names) comes from `periodictable`.
A formula is kept as written (LaTeX too: `B$_x$Al$_{1-x}$N`) and normalised without LaTeX
(`BxAl1-xN`). Elements come from formulas, element names ("magnesium"), chemical systems
("Li-Fe-P-O"), lists of symbols ("Nd, Sm, Gd") and symbols followed by a material word
("Pt catalysts", "Cu-doped"). Acronyms (CNN, DFT, CPU), space groups (P3221) and English
words ("In", "As", "lead to") are not elements.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Iterator

import periodictable

from .tags import trie_regex

MAX_TEXT = 20_000  # abstracts are ~2 KB; longer input is cut so hostile text stays fast

# Hydrogen to plutonium: heavier elements' symbols (Fm, No, Ds, Md...) are far more often units,
# space groups or abbreviations than chemistry in this literature.
ELEMENTS = {element.symbol: element.name for element in periodictable.elements if 1 <= element.number <= 94}
_NAMES = {name: symbol for symbol, name in ELEMENTS.items()}
_NAMES.update({"aluminium": "Al", "sulphur": "S", "caesium": "Cs"})
# Names that are also common English words: counted only before a chemistry word.
_AMBIGUOUS_NAMES = {"lead", "gold", "silver", "iron", "tin", "mercury", "carbon"}
_CHEMISTRY_AFTER = (
    r"(?:[- ](?:based|free|rich|doped|containing|halides?|oxides?|zirconate|titanate|iodides?|bromides?|"
    r"chlorides?|sulfides?|selenides?|tellurides?|nitrides?|carbides?|alloys?|atoms?|ions?|nanoparticles?|"
    r"nanoclusters?|clusters?|films?|surfaces?|electrodes?|anodes?|cathodes?|catalysts?|perovskites?|"
    r"compounds?|nanotubes?|fibers?|fibres?|dioxide|monoxide|capture|materials?))"
)
# An element name in a phrase that is not about what something is made of.
_NOT_COMPOSITION = re.compile(r"(?:hydrogen[- ]bond|carbon (?:footprint|emission|neutral|budget|tax|credit))", re.IGNORECASE)
# Two-letter symbols that are also English words or abbreviations; counted only in formulas,
# chemical systems or lists of other symbols.
_AMBIGUOUS_SYMBOLS = {"In", "As", "At", "Be", "He", "No", "Am", "Es", "Al", "Ne", "Re", "Pa", "Bi", "Co", "Pu", "Po", "Os", "Ga", "Ti", "Ar", "Pm", "Mo", "Nb", "Hf", "Sm"}
# Placeholders of generic formulas (RENiO3, ABX3, LnMO3...).
_PLACEHOLDERS = {"RE", "Ln", "TM", "M", "X", "A", "R", "Me"}
_VARIABLE = "xyzδ"
_ONE_ELEMENT_MOLECULES = {"H2", "O2", "O3", "N2", "F2", "Cl2", "Br2", "I2", "S8", "P4", "C60", "C70"}

_MATERIAL_WORD_AFTER = re.compile(
    r"[- ](?:based|doped|rich|free|containing|substituted|alloys?|atoms?|ions?|ion|nanoparticles?|"
    r"nanoclusters?|clusters?|films?|thin films?|surfaces?|sites?|dopants?|doping|metal|anodes?|cathodes?|"
    r"catalysts?|electrodes?|adatoms?|single[- ]atoms?|substitution|content|concentration|vacanc(?:y|ies)|"
    r"oxides?|nitrides?|carbides?|compounds?|layers?|monolayers?|nanowires?|precipitates?)\b"
)

# A word of text: a formula candidate. Separators are spaces and sentence punctuation; the
# LaTeX inside `$...$` and `_{...}` has no spaces in formulas as arXiv writes them.
_WORD = re.compile(r"[^\s,;:!?\"'“”‘’]+")
# A formula has a capital followed (after an optional small letter) by a digit, a capital, a
# bracket, LaTeX, or a variable count: "The", "Using", "Li" alone have none.
_FORMULA_HINT = re.compile(r"[A-Z][a-z]?[0-9A-Z$_({\\xyzδ]")
_LATEX_MARKUP = re.compile(r"\\(?:mathrm|text|rm|mathbf|textrm|mathit)\s*|[${}_~]|\\,|\\!")
_CHARGE = re.compile(r"\^\{?[0-9]*[+\-−]\}?|\^\{?[0-9.]+\}?")
_COUNT = rf"(?:[0-9]*\.?[0-9]+(?:[-+−][{_VARIABLE}0-9.]+)?|[{_VARIABLE}](?:[-+−][0-9.]+)?|[0-9]*\.?[0-9]*[-+−][{_VARIABLE}])"
_SYMBOL = "|".join(sorted((*ELEMENTS, *_PLACEHOLDERS), key=len, reverse=True))
_FORMULA_PART = re.compile(rf"({_SYMBOL})({_COUNT})?|\((.+?)\)({_COUNT})?")
_FORMULA = re.compile(rf"^(?:(?:{_SYMBOL})(?:{_COUNT})?|\((?:(?:{_SYMBOL})(?:{_COUNT})?)+\)(?:{_COUNT})?)+$")
_SYMBOL_TOKEN = re.compile(rf"(?:{_SYMBOL})")
_SPACE_GROUP = re.compile(r"^[PIFCRAB][0-9]+(?:/[a-z]+)?$|^[PIFCRAB][a-z]?[-−]?[0-9]+[a-z]*$")

# The patterns below start with a choice of literals, not with the lookbehind that says where
# a word starts: Python's regex engine then skips to the places where one can begin instead of
# trying every character (~40 ns each); `_matches_at_word_starts` checks the word start.
# An element name alone or with one more letter ("carbons"), as a whole word of letters; the
# names as a trie, so the engine branches on letters instead of trying 97 names at each one.
_NAME_WORD = re.compile("(?:" + trie_regex(list(_NAMES)) + r")[a-z]?(?![\w])")
# The words _NAME_WORD can match: a text with none of them (most abstracts) is not scanned.
_NAME_FORMS = frozenset([*_NAMES, *(name + letter for name in _NAMES for letter in string.ascii_lowercase)])
_LETTER_RUN = re.compile("[a-z]+")
_SYSTEM = re.compile(rf"((?:{_SYMBOL})(?:[-–](?:{_SYMBOL})){{1,7}})(?![\w-])")
_SYMBOL_LIST = re.compile(
    rf"((?:{_SYMBOL})(?:(?:\s*,\s*|\s*/\s*|,?\s+and\s+|,?\s+or\s+)(?:{_SYMBOL})){{1,20}})(?![\w-])"
)
_LONE_SYMBOL = re.compile(rf"({_SYMBOL})(?=[- ])")


def _matches_at_word_starts(pattern: re.Pattern, text: str, not_after: str = "-") -> Iterator[re.Match]:
    """What `(?<![\\w<not_after>])<pattern>` would find with finditer, in order."""
    position = 0
    while (match := pattern.search(text, position)) is not None:
        start = match.start()
        if start and (text[start - 1] in not_after or text[start - 1].isalnum() or text[start - 1] == "_"):
            position = start + 1  # a match inside a word: look again from the next character
            continue
        yield match
        position = match.end()


@dataclass(frozen=True)
class Formula:
    formula: str  # normalised, without LaTeX: FexTaS2
    as_written: str  # as in the text: Fe$_x$TaS$_2$
    kind: str  # compound | generic (with placeholders such as RE or M)
    elements: tuple[str, ...]


def _strip_word(word: str) -> str:
    """A formula candidate without the brackets and sentence punctuation around it."""
    word = word.strip(".()[]")
    # Balanced brackets inside stay: (Li,Na)CoO2 is rare; Ca(OH)2 is common.
    while word.endswith(")") and word.count(")") > word.count("("):
        word = word[:-1]
    while word.startswith("(") and word.count("(") > word.count(")"):
        word = word[1:]
    return word.rstrip(".")


def normalise_formula(text: str) -> str:
    """The formula without LaTeX markup or charges: `B$_x$Al$_{1-x}$N` -> `BxAl1-xN`."""
    text = _CHARGE.sub("", text)
    return _LATEX_MARKUP.sub("", text).replace("−", "-").replace("\\delta", "δ")


def _symbols(formula: str) -> list[str]:
    return [match.group(1) for match in _FORMULA_PART.finditer(formula) if match.group(1)] + [
        symbol for match in _FORMULA_PART.finditer(formula) if match.group(3)
        for symbol in _symbols(match.group(3))
    ]


def parse_formula(written: str) -> Formula | None:
    """A Formula if `written` is one, else None (acronyms, space groups, words, lone symbols)."""
    formula = normalise_formula(written)
    if not 2 <= len(formula) <= 60 or not _FORMULA.match(formula):
        return None
    if _SPACE_GROUP.match(formula):
        return None
    has_digit = any(char.isdigit() for char in formula)
    has_variable = re.search(rf"[A-Za-z)][{_VARIABLE}]", formula)
    if not has_digit:
        # Digit-free words: all-capital ones are acronyms (CNN, CPU, POI, HATCN, MOF, B_S); mixed
        # ones (SiC, GaN, NiO) are formulas unless they hold a run of capitals (CoREMOF) or are an
        # acronym's plural (FCs).
        if formula.isupper() or re.search(r"[A-Z]{3,}|^[A-Z]{2,}s$", formula):
            return None
        if not has_variable and len(formula) > 2 and formula.upper() == formula.replace("s", "S"):
            return None
    # An acronym with a number (OC20, MP20, QM9): capitals then one number of two or more digits.
    if re.fullmatch(r"[A-Z]{2,}[0-9]{2,}", formula):
        return None
    symbols = _symbols(formula)
    real = [symbol for symbol in symbols if symbol in ELEMENTS and not (symbol in _PLACEHOLDERS)]
    placeholders = [symbol for symbol in symbols if symbol in _PLACEHOLDERS and symbol not in ELEMENTS]
    if not real:
        return None
    if len(symbols) == 1:
        # One element: only the common molecules (O2, H2, Cl2, O3, C60), not P3221 or I4.
        if formula not in _ONE_ELEMENT_MOLECULES:
            return None
    if placeholders and (not has_digit or len(real) < 2 or not any(len(symbol) == 2 for symbol in real + placeholders)):
        return None  # ABX3: placeholders with a lone real-looking letter are not a formula
    # Single-letter placeholders that are real elements (B, C...) are kept as elements only if
    # the formula has no placeholder at all.
    return Formula(formula, written, "generic" if placeholders else "compound", tuple(dict.fromkeys(real)))


_SEPARATORS = frozenset(",;:!?\"'“”‘’")  # with whitespace: what ends a `_WORD`


def _words_with_hint(text: str) -> Iterator[str]:
    """Each word of `_WORD` that holds a `_FORMULA_HINT`, in order: found from the hints (a few
    per abstract) rather than by testing each of its ~250 words."""
    word_end = 0
    for hint in _FORMULA_HINT.finditer(text):
        if hint.start() < word_end:
            continue  # a second hint in the same word
        start = hint.start()
        while start and not (text[start - 1] in _SEPARATORS or text[start - 1].isspace()):
            start -= 1
        word = _WORD.match(text, start)
        word_end = word.end()
        yield word.group(0)


def find_formulas(text: str | None) -> list[Formula]:
    """Each distinct formula in the text, in order of first appearance."""
    if not text:
        return []
    text = text[:MAX_TEXT]
    found: dict[str, Formula] = {}
    for whole_word in _words_with_hint(text):
        word = _strip_word(whole_word)
        if len(word) < 2 or not word[0].isupper() and word[0] not in "($(\\":
            continue
        if len(word) > 2 and word[1:].isalpha() and word[1:].islower():
            continue  # a capitalised word: "The", "Using" (a formula has a second capital or a digit)
        candidates = [word]
        if "-" in normalise_formula(word) and not parse_formula(word):
            # "LiFePO4-based", "MOF-5": try each hyphen part.
            candidates = [part for part in re.split(r"-(?![^{]*\})", word) if part]
            if any(re.fullmatch(r"[A-Z]{3,}", part) for part in candidates):
                continue  # SARS-CoV-2, MOF-5: a name with an acronym, not formulas
        for candidate in candidates:
            formula = parse_formula(_strip_word(candidate))
            if formula and formula.formula not in found:
                found[formula.formula] = formula
    return list(found.values())


def _name_elements(text: str) -> set[str]:
    elements = set()
    lowered = text.lower()
    if _NAME_FORMS.isdisjoint(_LETTER_RUN.findall(lowered)):
        return elements  # a name is a whole run of letters, so no run is a name: none here
    for match in _matches_at_word_starts(_NAME_WORD, lowered):
        word = match.group(0)
        name = word if word in _NAMES else word[:-1]
        if name in _AMBIGUOUS_NAMES:
            after = lowered[match.end() : match.end() + 30]
            if not re.match(_CHEMISTRY_AFTER, after, re.IGNORECASE):
                continue
            if name == "gold" and re.match(r"[- ]standard", after):
                continue
        if _NOT_COMPOSITION.match(lowered, match.start()):
            continue
        elements.add(_NAMES[name])
    return elements


def find_elements(text: str | None, formulas: list[Formula] | None = None) -> set[str]:
    """Element symbols that the text's formulas, element names, systems and symbol lists mention."""
    if not text:
        return set()
    text = text[:MAX_TEXT]
    if formulas is None:
        formulas = find_formulas(text)
    elements = {symbol for formula in formulas for symbol in formula.elements}
    elements |= _name_elements(text)
    for match in _matches_at_word_starts(_SYSTEM, text):
        parts = re.split(r"[-–]", match.group(1))
        real = [part for part in parts if part in ELEMENTS]
        # "I-V", "C-H": a system needs a two-letter symbol to tell it from such abbreviations.
        if len(real) == len(parts) and any(len(part) == 2 for part in parts):
            elements.update(real)
    for match in _matches_at_word_starts(_SYMBOL_LIST, text):
        parts = re.split(r"\s*,\s*|\s*/\s*|,?\s+and\s+|,?\s+or\s+", match.group(1))
        if all(part in ELEMENTS for part in parts):
            unambiguous = [part for part in parts if len(part) == 2 and part not in _AMBIGUOUS_SYMBOLS]
            if len(unambiguous) >= 2 or len(parts) >= 3 and unambiguous:
                elements.update(parts)
    for match in _matches_at_word_starts(_LONE_SYMBOL, text, not_after="-$\\"):
        symbol = match.group(1)
        if symbol in ELEMENTS and len(symbol) == 2 and symbol not in _AMBIGUOUS_SYMBOLS:
            if _MATERIAL_WORD_AFTER.match(text, match.end()):
                elements.add(symbol)
    return elements


def paper_chemistry(title: str | None, summary: str | None, comment: str | None) -> tuple[list[Formula], list[str]]:
    """The formulas (first appearance first) and sorted element symbols of a paper."""
    text = "\n".join(part for part in (title, summary, comment) if part)
    formulas = find_formulas(text)
    return formulas, sorted(find_elements(text, formulas))

"""A synthetic arXiv-like corpus for benchmarks: deterministic, realistic in the ways FTS cares about.

Word frequencies follow Zipf's law over a large vocabulary (real domain words at the top ranks,
generated words in the long tail), so common terms match a large share of papers and rare ones
a handful, as on arXiv. Papers come in submission order with arXiv-style ids (YYMM.NNNNN).
"""

from __future__ import annotations

import datetime
import itertools
import random
from typing import Iterator

# The head of the distribution: words that really are frequent in materials/ML abstracts.
# Ranks 1..len(HEAD) in this order; the rest of the vocabulary are generated words.
HEAD = """
the of and a in to we is for with that by on are as this from be an which model materials
learning our data can using these method results based properties structure energy show
neural network high approach it its two models also new at prediction machine or between
such used first performance different has crystal training than framework large electronic
dataset work both not their study molecular accuracy deep field however phase graph
methods systems have more predict range time quantum into temperature using been while
physical density functional theory atomic potential interatomic diffusion generative
materials discovery transformer alloy battery catalyst polymer thermal conductivity band gap
magnetic surface interface defect screening active bayesian optimization uncertainty
representation equivariant message passing descriptor symmetry lattice perovskite oxide
electrolyte adsorption spectra microscopy language benchmark simulation dynamics force
""".split()
SYLLABLES = (
    "ba be bi bo bu ca ce ci co cu da de di do du fa fe fi fo ga ge gi go ka ke ki ko la le li lo lu "
    "ma me mi mo mu na ne ni no nu pa pe pi po pu ra re ri ro ru sa se si so su ta te ti to tu va ve "
    "vi vo za ze zi zo tra tri pro pla sta ster gra mon lin ther phon tron cryst ion"
).split()
CATEGORIES = [  # (primary category, weight), roughly the mix of an AI-for-materials query
    ("cond-mat.mtrl-sci", 40), ("cs.LG", 20), ("physics.comp-ph", 10), ("cond-mat.dis-nn", 5),
    ("physics.chem-ph", 8), ("cond-mat.stat-mech", 3), ("cs.AI", 5), ("stat.ML", 4),
    ("cond-mat.soft", 3), ("quant-ph", 2),
]
SURNAMES_COUNT = 20_000


def _generated_words(rng: random.Random, count: int) -> list[str]:
    words: list[str] = []
    seen = set(HEAD)
    while len(words) < count:
        word = "".join(rng.choice(SYLLABLES) for _ in range(rng.choice((2, 2, 3, 3, 3, 4))))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


class Corpus:
    """`papers(n)` yields n paper dicts shaped like harvest.parse's output, oldest first."""

    def __init__(self, *, seed: int = 2026, vocabulary: int = 200_000, zipf_s: float = 1.07):
        rng = random.Random(seed)
        self.seed = seed
        self.vocab = HEAD + _generated_words(rng, vocabulary - len(HEAD))
        weights = [1.0 / (rank**zipf_s) for rank in range(1, len(self.vocab) + 1)]
        self.cum_weights = list(itertools.accumulate(weights))
        self.surnames = [w.capitalize() for w in _generated_words(random.Random(seed + 1), SURNAMES_COUNT)]
        self.categories = [c for c, _ in CATEGORIES]
        self.category_weights = [w for _, w in CATEGORIES]

    def _words(self, rng: random.Random, count: int) -> list[str]:
        return rng.choices(self.vocab, cum_weights=self.cum_weights, k=count)

    def _abstract(self, rng: random.Random) -> str:
        words = self._words(rng, rng.randint(200, 260))  # ~1,400 characters
        sentences = []
        at = 0
        while at < len(words):
            length = rng.randint(12, 28)
            sentence = words[at : at + length]
            sentences.append(sentence[0].capitalize() + " " + " ".join(sentence[1:]) + ".")
            at += length
        return " ".join(sentences)

    def _authors(self, rng: random.Random) -> list[str]:
        # Most papers have 2-8 authors; collaborations reach 150.
        count = min(150, max(1, int(rng.lognormvariate(1.3, 0.8))))
        return [f"{chr(65 + rng.randrange(26))}. {rng.choice(self.surnames)}" for _ in range(count)]

    def papers(self, count: int, *, start: datetime.datetime = datetime.datetime(2007, 4, 1),
               end: datetime.datetime = datetime.datetime(2026, 11, 20)) -> Iterator[dict]:
        rng = random.Random(self.seed + 2)
        step = (end - start) / max(count, 1)
        serial: dict[str, int] = {}
        for n in range(count):
            published = start + step * n
            month = published.strftime("%y%m")
            serial[month] = serial.get(month, 0) + 1
            arxiv_id = f"{month}.{serial[month]:05d}"
            version = rng.choices((1, 2, 3, 4), weights=(60, 28, 9, 3))[0]
            updated = published + datetime.timedelta(days=rng.randint(0, 400) * (version > 1), minutes=n % 60)
            primary = rng.choices(self.categories, weights=self.category_weights)[0]
            cross = rng.sample(self.categories, rng.choice((0, 0, 1, 1, 2, 3)))
            categories = [primary] + [c for c in cross if c != primary]
            title_words = self._words(rng, rng.randint(6, 16))
            yield {
                "arxiv_id": arxiv_id,
                "version": version,
                "title": title_words[0].capitalize() + " " + " ".join(title_words[1:]),
                "summary": self._abstract(rng),
                "authors": self._authors(rng),
                "primary_category": primary,
                "categories": categories,
                "published": published.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "updated": updated.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "comment": rng.choice((None, None, f"{rng.randint(5, 40)} pages, {rng.randint(1, 12)} figures")),
                "journal_ref": None,
                "doi": None,
                "abs_url": f"https://arxiv.org/abs/{arxiv_id}v{version}",
                "pdf_url": f"https://arxiv.org/pdf/{arxiv_id}v{version}",
            }


def with_history(paper: dict) -> list[dict]:
    """The paper at every version up to its current one, as a store that saw each would hold them."""
    published = datetime.datetime.strptime(paper["published"], "%Y-%m-%dT%H:%M:%SZ")
    updated = datetime.datetime.strptime(paper["updated"], "%Y-%m-%dT%H:%M:%SZ")
    versions = []
    for version in range(1, paper["version"]):
        stamp = published + (updated - published) * (version - 1) / (paper["version"] - 1)
        versions.append({
            **paper, "version": version, "updated": stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "abs_url": f"https://arxiv.org/abs/{paper['arxiv_id']}v{version}",
            "pdf_url": f"https://arxiv.org/pdf/{paper['arxiv_id']}v{version}",
        })
    return versions + [paper]

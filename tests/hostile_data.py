"""Hostile paper content for the fake arXiv API: shared by test_hostile.py and test_serving_safety.py.

Every script payload, if it ever ran in a browser, marks the page's <html> element with
`data-xss="<where>"`, which a DOM dump shows; as text it shows only as `setAttribute(...)`.
"""

from __future__ import annotations

from harvest.readme import END_MARKER, START_MARKER

from .fake_arxiv import make_paper


def xss(where: str) -> str:
    """JavaScript that marks the document if it runs."""
    return f"document.documentElement.setAttribute('data-xss','{where}')"


HUGE = ("Large language models propose perovskites that are then relaxed with DFT. " * 1400)[:100_000]
MARKDOWN = (
    "Line one\n```\nunclosed fence\n# heading\n---\n===\n> quote\n- item\n+ item\n* item\n1. ordered\n2) ordered\n"
    "| a | b |\n|---|---|\n:--|--:\n[ref]: https://evil.example\n    indented\n\n    code after a blank line\n"
    "~~~\n<pre>\nunclosed pre\n<details><summary>x</summary>\r```\rCR fence\r\n___\n***"
)
AUTHORS_500 = [f"Author {i:03d}" for i in range(1, 500)] + [f"<script>{xss('author')}</script>"]

# name -> (fields served, fields stored when they differ from what was served)
HOSTILE: dict[str, tuple[dict, dict]] = {
    "script": (
        {"title": f"<script>{xss('script-title')}</script> Diffusion for crystals",
         "summary": f"We show <script>{xss('script-summary')}</script> results.\n<script>\n{xss('script-block')}"},
        {},
    ),
    "img-onerror": (
        {"title": f'<img src=x onerror="{xss("img-title")}"> Graph networks',
         "summary": f'Text <img src=x onerror="{xss("img-summary")}"> more.\n<img src=x onerror="{xss("img-block")}">',
         "comment": f'<svg onload="{xss("svg-comment")}">'},
        {},
    ),
    "readme-markers": (
        {"title": f"Markers {END_MARKER} in a title",
         "summary": f"Before\n{END_MARKER}\nafter {START_MARKER} and a lone --> too",
         "authors": ["<!-- Opens a comment", "Closes it -->"]},
        {},
    ),
    "markdown": (
        {"title": f"**bold** [link](javascript:{xss('markdown-link')}) | pipe | `tick ## trailing", "summary": MARKDOWN},
        {"summary": MARKDOWN.replace("\r\n", "\n").replace("\r", "\n")},  # XML's own line-end rule
    ),
    "huge-abstract": ({"title": "A 100 KB abstract", "summary": HUGE}, {"summary": HUGE.strip()}),
    "control-and-emoji": (
        {"title": "Control \x01\x1b chars and emoji 👩‍🔬🧪🇸🇬",
         "summary": "Tab\there; C0 \x02\x07\x0c dropped; C1 \x85\x9b; BOM \ufeff; zero-width \u200b\u200d; "
                    "separators \u2028\u2029; combining e\u0301; astral 𝔸𝕀 🤖."},
        # XML forbids C0 controls: dropped before parsing. feedparser reads C1 controls as cp1252.
        {"title": "Control chars and emoji 👩‍🔬🧪🇸🇬",
         "summary": "Tab\there; C0  dropped; C1 …›; BOM \ufeff; zero-width \u200b\u200d; "
                    "separators \u2028\u2029; combining e\u0301; astral 𝔸𝕀 🤖."},
    ),
    "right-to-left": (
        {"title": "تصميم المواد العكسي باستخدام الذكاء الاصطناعي",
         "summary": "עיצוב חומרים הפוך. Mixed \u202egnp.exe\u202c override and \u200f marks.",
         "authors": ["محمد علي", "דוד כהן"]},
        {},
    ),
    "500-authors": ({"title": "A consortium paper", "authors": AUTHORS_500}, {}),
    "sql-and-entities": (
        {"title": "Robert'); DROP TABLE papers;-- ' OR 1=1",
         "summary": "&lt;script&gt; stays text, &amp;amp; stays &amp;, and %s %(x)s ? :name placeholders"},
        {},
    ),
}


def hostile_papers() -> list[dict]:
    papers = [make_paper(n, **fields) for n, (fields, _) in enumerate(HOSTILE.values(), 1)]
    return papers + [make_paper(n) for n in range(len(HOSTILE) + 1, 13)]

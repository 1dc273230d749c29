"""Render the README section of the latest successful run, in the original tracker's format."""

from __future__ import annotations

import datetime
import json
import os
import re
import stat
import tempfile
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlite_utils

from .files import LocalFileError, read_small_file
from .site_config import LOCAL_SITE, SiteLinks

START_MARKER = "<!-- ARXIV_PAPERS_START -->"
END_MARKER = "<!-- ARXIV_PAPERS_END -->"
# The dataset's query, site and repository, as configured (harvest/site_config.py); rewritten only where
# a README has these markers.
SITE_START_MARKER = "<!-- AI4MAT_SITE_START -->"
SITE_END_MARKER = "<!-- AI4MAT_SITE_END -->"
EMPTY_HEADLINE = "## 🥳 No new papers today. Take it easy and recharge!"

# GitHub stops rendering a README past 512 KB; the section stays well inside that, leaving room
# for the rest of the file. Papers that do not fit are counted in the closing line instead.
SECTION_BUDGET_BYTES = 400_000
# Per paper, bounds far above real papers (of the 1,448 in tests/fixtures/ai4mat: abstracts up to
# 2,346 characters, up to 144 authors, names up to 37 characters, titles up to 186), so only an
# abnormal paper is cut, and visibly.
MAX_TITLE_CHARS = 1_000
MAX_SUMMARY_CHARS = 5_000
MAX_AUTHORS = 200
MAX_AUTHOR_CHARS = 300
# A README larger than this is not one; refuse it rather than read it.
MAX_README_BYTES = 32_000_000


class ReadmeError(Exception):
    """The README cannot be updated safely; the message says what to fix by hand."""


def latest_ok_run(db: sqlite_utils.Database) -> dict | None:
    """The latest successful daily harvest; a backfill's papers are history, not news."""
    rows = db.execute_returning_dicts(
        "SELECT * FROM runs WHERE status = 'ok' AND kind = 'harvest' ORDER BY id DESC LIMIT 1"
    )
    return rows[0] if rows else None


def cycle_runs(db: sqlite_utils.Database, run: dict) -> list[int]:
    """The successful daily harvests of `run`'s announcement cycle (harvest/cycle.py), `run` included.

    A run with no recorded cycle (written by other tools, or a file from before schema 7 read
    as it is) is a cycle of its own.
    """
    if "cycle" not in run:
        return [run["id"]]
    rows = db.execute(
        "SELECT id FROM runs WHERE status = 'ok' AND kind = 'harvest' AND (id = :id OR cycle = :cycle) ORDER BY id",
        {"id": run["id"], "cycle": run.get("cycle")},
    ).fetchall()
    return [row[0] for row in rows]


def run_papers(db: sqlite_utils.Database, run_ids: list[int]) -> list[dict]:
    """Papers new or updated in the runs `run_ids` (one cycle's), newest `updated` first, each at
    the newest version seen by the last of them.

    A version first seen by these runs counts only if it was the paper's newest so far: an older
    version served late (a stale replica) is history, not news, and a paper that arrived at two
    versions, in one run or in two runs of the cycle, is listed once.
    """
    marks = ",".join("?" * len(run_ids))
    return db.execute_returning_dicts(
        f"""
        SELECT v.arxiv_id, v.version, v.title, v.summary, v.authors, v.updated,
               p.published, p.primary_category
        FROM versions v JOIN papers p ON p.arxiv_id = v.arxiv_id
        WHERE v.run_id IN ({marks})
          AND v.version = (SELECT max(w.version) FROM versions w WHERE w.arxiv_id = v.arxiv_id AND w.run_id <= ?)
        ORDER BY v.updated DESC, v.arxiv_id DESC
        """,
        [*run_ids, max(run_ids)],
    )


def _safe(text: str) -> str:
    """Paper text verbatim, as the original tracker wrote it, except that `<!--` is written
    `&lt;!--`: no paper can open an HTML comment, so none can end the section early.

    Nothing else is escaped, on purpose: the section's readers and their tools expect arXiv's
    text byte for byte (`V_max<17.5`, `$<$`, lines starting with `-` in wrapped abstracts).
    """
    return text.replace("<!--", "&lt;!--")


def _stamp(finished_at: str, zone: ZoneInfo, label: str) -> str:
    moment = datetime.datetime.strptime(finished_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    return f"*Last updated: {moment.astimezone(zone).strftime('%Y-%m-%d %H:%M:%S')} ({label})*\n\n"


def paper_tag_lines(db: sqlite_utils.Database, arxiv_ids: list[str]) -> dict[str, str]:
    """Each paper's tags as one line, materials then methods then tasks ("MOF, diffusion model")."""
    if "paper_tags" not in db.table_names():
        return {}  # a file from before schema 2, opened read-only
    lines: dict[str, list[str]] = {}
    for start in range(0, len(arxiv_ids), 500):
        chunk = arxiv_ids[start : start + 500]
        for arxiv_id, tag in db.execute(
            f"SELECT arxiv_id, tag FROM paper_tags WHERE arxiv_id IN ({','.join('?' * len(chunk))}) "
            "ORDER BY arxiv_id, CASE kind WHEN 'material' THEN 0 WHEN 'method' THEN 1 ELSE 2 END, mentions DESC, tag",
            chunk,
        ):
            lines.setdefault(arxiv_id, []).append(tag)
    return {arxiv_id: ", ".join(tags) for arxiv_id, tags in lines.items()}


def _cut(text: str, limit: int) -> str:
    """`text`, or its first `limit` characters and a visible note of the cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]} … [cut: {limit:,} of {len(text):,} characters shown]"


def _authors(names: list[str]) -> str:
    shown = ", ".join(_cut(name, MAX_AUTHOR_CHARS) for name in names[:MAX_AUTHORS])
    rest = len(names) - MAX_AUTHORS
    return f"{shown}, … and {rest:,} more" if rest > 0 else shown


def _paper_block(index: int, paper: dict, tags: str | None = None) -> str:
    entry_url = f"http://arxiv.org/abs/{paper['arxiv_id']}v{paper['version']}"
    return (
        f"### {index}. {_safe(_cut(paper['title'], MAX_TITLE_CHARS))}\n\n"
        f"**Authors:** {_safe(_authors(json.loads(paper['authors'])))}\n\n"
        f"**Published:** {(paper['published'] or '')[:10]}\n\n"
        f"**Category:** {_safe(_cut(paper['primary_category'] or '', MAX_TITLE_CHARS))}\n\n"
        + (f"**Tags:** {_safe(tags)}\n\n" if tags else "") +
        f"**ID:** {paper['arxiv_id']}v{paper['version']}\n\n"
        f"**Link:** [{entry_url}]({entry_url})\n\n"
        f"**Summary:** {_safe(_cut(paper['summary'], MAX_SUMMARY_CHARS))}...\n\n"
        "---\n\n"
    )


def render_section(
    db: sqlite_utils.Database,
    *,
    zone: ZoneInfo,
    label: str = "SGT",
    max_papers: int = 100,
    more_url: str | None = None,
    tags: bool = False,
) -> str:
    """The whole section, markers included, byte for byte in the original tracker's format.

    With `tags` (config `readme_tags`), a paper with tags gets a `**Tags:**` line after its
    category; without, the format is exactly the original's.

    Lists the versions first seen in the successful runs of the latest successful run's
    announcement cycle (at most `max_papers`, newest first, then one line counting the rest and
    linking to new_today, which pages through all of them). With no successful run, or none new
    in the cycle, the section says so. The stamp is the latest run's finish time in `zone`.
    The section is at most SECTION_BUDGET_BYTES of UTF-8: an abnormally long title, abstract or author list is cut with
    a note, and papers that would not fit are left to the closing line's count.
    """
    run = latest_ok_run(db)
    papers = run_papers(db, cycle_runs(db, run)) if run else []
    stamp = _stamp(run["finished_at"], zone, label) if run else ""
    if not papers:
        body = f"{EMPTY_HEADLINE}\n\n{stamp}"
    else:
        body = f"## New Papers ({len(papers)})\n\n{stamp}"
        # Room for the markers and the closing line (its link comes from config; bounded here).
        used = len(f"{START_MARKER}\n\n{body}\n{END_MARKER}".encode()) + 300 + len((more_url or "").encode())
        shown = 0
        listed = papers[:max_papers]
        tag_lines = paper_tag_lines(db, [paper["arxiv_id"] for paper in listed]) if tags else {}
        for index, paper in enumerate(listed, 1):
            block = _paper_block(index, paper, tag_lines.get(paper["arxiv_id"]))
            used += len(block.encode())
            if used > SECTION_BUDGET_BYTES:
                break
            body += block
            shown = index
        rest = len(papers) - shown
        if rest > 0:
            where = f"[the full list]({more_url.rstrip('/')}/ai4mat/new_today)" if more_url else "the `new_today` query of the dataset"
            body += f"*…and {rest} more paper{'s' if rest != 1 else ''} from this run: see {where}.*\n\n"
    return f"{START_MARKER}\n\n{body}\n{END_MARKER}"


def _code(text: str) -> str:
    """`text` as one Markdown code span, whatever backticks or line breaks it holds."""
    text = " ".join(text.split())
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def render_site_section(query: str, links: SiteLinks) -> str:
    """The README's lines on what the dataset follows and where it lives, markers included.

    Links only to what is configured (config `dataset_url`, `repository` or $GITHUB_REPOSITORY);
    otherwise it says how to publish.
    """
    lines = [f"**Query:** {_code(query)} (the `query` of `config.json`: change it and run `make serve` to follow another topic)"]
    if links.site_url:
        page = links.page
        lines.append(
            f"**Site:** <{links.site_url}>: [new today]({page('ai4mat/new_today')}) · [search]({page('ai4mat/search')}) · "
            f"[Atom feed]({page('ai4mat/feed.atom')}) · [trends]({page('-/dashboards/trends')}) · [the SQLite file]({page('ai4mat.db')}). "
            f"Feeds per interest: `{page('ai4mat/feed_search.atom')}?q=...`, `feed_author.atom?name=...`, "
            "`feed_category.atom?category=...`, `feed_tag.atom?tag=...`."
        )
    else:
        lines.append(
            f"**Site:** none published yet (`dataset_url` in `config.json` is not set). `make serve` serves the dataset on "
            f"<{LOCAL_SITE}>; to publish it, deploy it (`scripts/publish.sh` deploys to Fly: set `FLY_APP` and `FLY_API_TOKEN`) "
            "and set `dataset_url` to the site's URL."
        )
    if links.repository_url:
        lines.append(
            f"**Repository:** [{links.repository}]({links.repository_url}); the latest file: "
            f"<{links.latest_download_url}>."
        )
    else:
        lines.append(
            "**Repository:** none configured: set `repository` (`owner/name`) in `config.json`, or run the daily "
            "workflow in GitHub Actions, which names it in `$GITHUB_REPOSITORY`."
        )
    return SITE_START_MARKER + "\n\n" + "\n\n".join(lines) + "\n\n" + SITE_END_MARKER


def replace_site_section(readme: str, section: str) -> str:
    """`readme` with its site section replaced by `section`; unchanged where it has no site markers."""
    start = readme.find(SITE_START_MARKER)
    end = readme.find(SITE_END_MARKER, start if start >= 0 else 0)
    if start < 0 and end < 0:
        return readme
    if start < 0 or end < 0 or readme.count(SITE_START_MARKER) > 1:
        raise ReadmeError(f"README's {SITE_START_MARKER} / {SITE_END_MARKER} lines are unpaired or repeated; fix them by hand")
    return readme[:start] + section + readme[end + len(SITE_END_MARKER):]


def replace_section(readme: str, section: str) -> str:
    """`readme` with the text between the markers (inclusive) replaced by `section`.

    Appends the section if neither marker is there. Raises ReadmeError if only one is, or they
    are out of order, rather than guess which text is ours.
    """
    start = readme.find(START_MARKER)
    end = readme.find(END_MARKER, start if start >= 0 else 0)
    if start < 0 and END_MARKER not in readme:
        return f"{readme}\n\n{section}" if readme else section
    if start < 0 or end < 0:
        raise ReadmeError(
            f"README has {'an end' if start < 0 else 'a start'} marker without its pair; "
            f"fix the {START_MARKER} / {END_MARKER} lines by hand"
        )
    if readme.count(START_MARKER) > 1:
        raise ReadmeError(f"README has more than one {START_MARKER}; keep one section and rerun")
    return readme[:start] + section + readme[end + len(END_MARKER):]


def update_file(path: str | os.PathLike, section: str, site_section: str | None = None) -> bool:
    """Put `section` into the README at `path` (created if missing); False if it was already there.

    Writes a unique temporary file beside the real file (through a symlink, beside its target)
    and renames it over, so concurrent runs never share a temporary file, a crash or a full disk
    never leaves a half-written README, and a failed write leaves no temporary file behind.
    Raises ReadmeError, in one line, when the file cannot be read, is not a regular file, is
    absurdly large, has broken markers, or cannot be written.
    """
    target = Path(os.path.realpath(path))
    try:
        old = read_small_file(target, max_bytes=MAX_README_BYTES).decode("utf-8")
        mode = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        old, mode = "", None
    except LocalFileError as error:
        raise ReadmeError(str(error)) from None
    except UnicodeDecodeError as error:
        raise ReadmeError(f"cannot read ({error})") from None
    except OSError as error:
        raise ReadmeError(f"cannot read ({error.strerror or error})") from None
    new = replace_section(old, section)
    if site_section is not None:
        new = replace_site_section(new, site_section)
    if new == old:
        return False
    try:
        _write_beside(target, new, mode)
    except OSError as error:
        raise ReadmeError(f"cannot write ({error.strerror or error})") from None
    return True


def _write_beside(target: Path, text: str, mode: int | None) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is None:  # a new file gets the usual mode, not mkstemp's 0600
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise

"""The `ai4mat` command: a thin click layer over the harvest modules."""

from __future__ import annotations

import datetime
import logging
import os
import sys
from pathlib import Path

import click

from . import __version__
from .config import ConfigError, ConfigNotFound, load_config
from .backfill import BackfillFailed, LogProgress, TerminalProgress, run_backfill
from .fetch import ArxivClient, RecordedPages
from .readme import ReadmeError, render_section, render_site_section, update_file
from .runner import RunFailed, run_harvest
from .serve import (
    LIVE, ServeError, check_files, choose_mode, datasette_argv, enable_wal, port_free, served_path, site_url, write_metadata,
)
from .site_files import default_config, site_files
from .site_config import SiteError, load_rendered_metadata, site_links, user_agent
from .enrich import enrich_all, stale_papers
from .enrich.tags import VocabularyError, load_vocabulary
from .store import StoreError, open_db, writing

db_option = click.option(
    "--db", "db_path", default="ai4mat.db", show_default=True, type=click.Path(dir_okay=False),
    help="The SQLite dataset file.",
)
DEFAULT_CONFIG_PATH = "config.json"
config_option = click.option(
    "--config", "config_path", default=DEFAULT_CONFIG_PATH, show_default=True, type=click.Path(dir_okay=False),
    help="JSON config with the arXiv query.",
)


def api_options(command):
    """--api-url, --delay and --timeout, for the commands that ask arXiv."""
    command = click.option("--timeout", type=click.FloatRange(min=0.1), default=60, show_default=True,
                           help="Read timeout per request, seconds.")(command)
    command = click.option("--delay", type=click.FloatRange(min=0), help="Seconds between API requests (default: config, 3).")(command)
    return click.option("--api-url", help="arXiv API endpoint (default: config api_url, or $ARXIV_API_URL).")(command)


def _client(config, api_url: str | None, delay: float | None, timeout: float) -> ArxivClient:
    """The arXiv client as configured: --api-url, then $ARXIV_API_URL, then config; --delay over config."""
    return ArxivClient(
        api_url or os.environ.get("ARXIV_API_URL") or config.api_url,
        delay_seconds=config.delay_seconds if delay is None else delay,
        timeout=(10.0, timeout),
        user_agent=user_agent(site_links(config)),
    )


def _load_config(config_path: str):
    try:
        config = load_config(config_path)
    except ConfigNotFound as error:
        init = "ai4mat init" if config_path == DEFAULT_CONFIG_PATH else f"ai4mat init --config {config_path}"
        raise click.ClickException(f"{error} (`{init}` writes the default one)")
    except ConfigError as error:
        raise click.ClickException(str(error))
    for notice in config.notices:
        click.echo(f"notice: {notice}", err=True)
    return config


def _vocabulary(config):
    """The tag vocabulary: the packaged one, extended by config `vocabulary` if set."""
    try:
        return load_vocabulary(config.vocabulary)
    except VocabularyError as error:
        raise click.ClickException(str(error))


@click.group()
@click.version_option(__version__, prog_name="ai4mat")
@click.option("-v", "--verbose", is_flag=True, help="Log each request and retry.")
def cli(verbose: bool):
    """ArXiv Daily – AI4MAT: harvest arXiv into a versioned SQLite dataset and publish it."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


@cli.command()
@config_option
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(config_path: str, force: bool):
    """Write the default config.json (the AI4MAT query) to start a dataset here."""
    path = Path(config_path)
    content = default_config()
    try:
        # "x" refuses an existing file in the same step that creates the new one.
        with open(path, "wb" if force else "xb") as file:
            file.write(content)
    except FileExistsError:
        raise click.ClickException(f"init: {path} already exists (pass --force to overwrite it)")
    except OSError as error:
        raise click.ClickException(f"init: cannot write {path} ({error.strerror})")
    click.echo(f'init: wrote {path}; edit its "query" for your topic, then run `ai4mat harvest`')


@cli.command()
@db_option
@config_option
@api_options
@click.option("--load", "recorded", multiple=True, type=click.Path(dir_okay=False),
              help="Replay a recorded API response (Atom XML) instead of asking arXiv; repeatable.")
def harvest(db_path: str, config_path: str, api_url: str | None, delay: float | None, timeout: float, recorded: tuple[str, ...]):
    """Fetch every result of the configured query and record new papers and versions."""
    config = _load_config(config_path)
    vocabulary = _vocabulary(config)
    if recorded:
        client = RecordedPages(list(recorded))
    else:
        client = _client(config, api_url, delay, timeout)
    try:
        with writing(db_path) as db:
            report = run_harvest(
                db, client, config.query, max_results=config.max_results, page_size=config.page_size,
                vocabulary=vocabulary,
            )
    except (StoreError, RunFailed) as error:
        raise click.ClickException(f"harvest failed: {error}")
    click.echo(report.summary())
    if report.notice():
        click.echo(report.notice(), err=True)


@cli.command()
@db_option
@config_option
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), default="1991-01-01", show_default=True,
              help="First submission day (UTC) to fetch.")
@click.option("--until", type=click.DateTime(["%Y-%m-%d"]), help="Last submission day (UTC) to fetch.  [default: today]")
@api_options
def backfill(db_path, config_path, since, until, api_url, delay, timeout):
    """Fetch the configured query's whole history, window by window; rerun to resume."""
    config = _load_config(config_path)
    vocabulary = _vocabulary(config)
    since = since.date()
    until = until.date() if until else datetime.datetime.now(datetime.timezone.utc).date()
    if since > until:
        raise click.ClickException(f"--since {since} is after --until {until}")
    client = _client(config, api_url, delay, timeout)
    display = TerminalProgress() if sys.stderr.isatty() else LogProgress(lambda line: click.echo(line, err=True))
    try:
        with writing(db_path) as db, display:
            report = run_backfill(db, client, config.query, since=since, until=until, page_size=config.page_size, progress=display,
                                  vocabulary=vocabulary)
    except (StoreError, BackfillFailed) as error:
        raise click.ClickException(f"backfill failed: {error}")
    click.echo(report.summary())


@cli.command()
@db_option
@config_option
@click.option("--workers", type=click.IntRange(min=1), default=min(2, os.cpu_count() or 1), show_default=True,
              help="Processes extracting in parallel.")
@click.option("--if-stale", is_flag=True,
              help="Only when some paper was tagged with another vocabulary version, or never (the daily job's step).")
def enrich(db_path: str, config_path: str, workers: int, if_stale: bool):
    """Recompute every paper's links, elements, formulas and tags (after a vocabulary change)."""
    config = _load_config(config_path)
    vocabulary = _vocabulary(config)
    if if_stale:
        papers, stale = _papers("enrich", db_path, vocabulary) or (0, 0)
        if not papers:
            click.echo(f"enrich: {db_path} holds no papers yet; nothing to do")
            return
        if not stale:
            click.echo(f"enrich: every paper is tagged with vocabulary {vocabulary.version}; nothing to do")
            return
        click.echo(f"enrich: {stale} papers were tagged with another vocabulary (or none)", err=True)
    _require_papers("enrich", db_path)
    try:
        with writing(db_path) as db:
            total = db["papers"].count
            bar = click.progressbar(length=total, label="enrich", show_eta=True, show_pos=True, file=sys.stderr)
            with bar, db.atomic():
                enriched = enrich_all(db, vocabulary, workers=workers, progress=bar.update)
    except StoreError as error:
        raise click.ClickException(f"enrich failed: {error}")
    click.echo(f"enrich: {enriched} papers tagged with vocabulary {vocabulary.version}")


@cli.command()
@db_option
@click.option("--threads", type=click.IntRange(1, 64), default=2, show_default=True, help="CPU threads for the neighbour index.")
def relate(db_path: str, threads: int):
    """Embed papers that lack an embedding and recompute every paper's related papers."""
    from .related import enrich_all as relate_all

    _require_papers("relate", db_path)
    try:
        with writing(db_path) as db:
            result = relate_all(db, threads=threads)
    except StoreError as error:
        raise click.ClickException(f"relate failed: {error}")
    click.echo(f"relate: {result['embedded']} papers embedded, related papers of {result['related']} papers recomputed")


@cli.command()
@db_option
@click.option("--minutes", type=click.FloatRange(min=0),
              help="Start no new batch after this long (the daily job's budget); the rest waits for the next run.")
@click.option("--workers", type=click.IntRange(min=1), default=min(2, os.cpu_count() or 1), show_default=True,
              help="Processes embedding in parallel (from the second batch on).")
def embed(db_path: str, minutes: float | None, workers: int):
    """Embed papers with all-MiniLM-L6-v2 for search and related papers, newest first (until then they rank without it)."""
    from .minilm import ModelError
    from .store import embed_minilm, papers_without_minilm

    papers, _ = _papers("embed", db_path) or (0, 0)
    if not papers:
        click.echo(f"embed: {db_path} holds no papers yet; nothing to do")
        return
    try:
        with writing(db_path) as db:
            bar = click.progressbar(length=papers_without_minilm(db), label="embed", show_eta=False, show_pos=True, file=sys.stderr)
            with bar:
                embedded, left = embed_minilm(db, seconds=None if minutes is None else minutes * 60, workers=workers, progress=bar.update)
    except (StoreError, ModelError) as error:
        raise click.ClickException(f"embed failed: {error}")
    click.echo(f"embed: {embedded} papers embedded with all-MiniLM-L6-v2; {left} still without")


def _papers(command: str, db_path: str, vocabulary=None) -> tuple[int, int] | None:
    """(papers, papers not tagged with `vocabulary`'s version) of the file, or None if there is no file.

    A file that is not a readable dataset fails with a one-line error.
    """
    if not Path(db_path).is_file():
        return None
    try:
        db = open_db(db_path, create=False, writable=False)
    except StoreError as error:
        raise click.ClickException(f"{command} failed: {error}")
    try:
        papers = db["papers"].count if db["papers"].exists() else 0
        return papers, (stale_papers(db, vocabulary) if vocabulary is not None and papers else 0)
    finally:
        db.close()


def _require_papers(command: str, db_path: str) -> None:
    """Refuse, in one line, a file that does not exist or holds no papers (nothing to derive from)."""
    found = _papers(command, db_path)
    if found is None:
        raise click.ClickException(f"{command} failed: {db_path}: database not found (run `ai4mat harvest --db {db_path}` first)")
    if not found[0]:
        raise click.ClickException(f"{command} failed: {db_path} holds no papers (run `ai4mat harvest` first)")


@cli.command()
@db_option
@click.option("--readme", "readme_path", default="README.md", show_default=True, type=click.Path(dir_okay=False))
@config_option
def readme(db_path: str, readme_path: str, config_path: str):
    """Rewrite the README's paper section (the latest announcement cycle's papers) and its site lines."""
    config = _load_config(config_path)
    try:
        db = open_db(db_path, create=False, writable=False)
    except StoreError as error:
        raise click.ClickException(str(error))
    try:
        section = render_section(
            db, zone=config.zone, label=config.timezone_label, max_papers=config.readme_max_papers,
            more_url=config.dataset_url, tags=config.readme_tags,
        )
    finally:
        db.close()
    site_section = render_site_section(config.query, site_links(config))
    path = Path(readme_path)
    try:
        changed = update_file(path, section, site_section)
    except ReadmeError as error:
        raise click.ClickException(f"{path}: {error}")
    if not changed:
        click.echo(f"readme: {path} unchanged")
        return
    click.echo(f"readme: {path} updated")


@cli.command()
@db_option
@click.option("--port", type=click.IntRange(1, 65535), default=8001, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="0.0.0.0 to serve other machines.")
@click.option("--metadata", "metadata_path", type=click.Path(dir_okay=False),
              help="Datasette metadata: titles, descriptions, canned queries.  [default: the site's metadata.yml]")
@click.option("--plugins-dir", type=click.Path(file_okay=False), help="Datasette plugins.  [default: the site's plugins/]")
@click.option("--template-dir", "templates_dir", type=click.Path(exists=True, file_okay=False),
              help="Datasette page templates.  [default: the site's templates/]")
@click.option("--immutable", is_flag=True,
              help="Serve the file immutable, as published: faster start, but it must not be written while served.")
@click.option("--check-port", is_flag=True,
              help="Only check that --host and --port can be listened on, then exit (make serve does, before harvesting).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="JSON config whose query, title, dataset_url and repository the pages show (default: config.json, if there).")
def serve(db_path: str, port: int, host: str, metadata_path: str | None, plugins_dir: str | None,
          templates_dir: str | None, immutable: bool, check_port: bool, config_path: str | None):
    """Serve the dataset with Datasette until Ctrl-C.

    Live by default: a harvest may write the file meanwhile, and every page shows one
    committed state, the new one as soon as it is committed. Immutable with --immutable, or
    when the file or its folder is read-only.

    The site (metadata, plugins, templates) is the one shipped with ai4mat, or the repository's
    when run from a checkout; each option replaces one part of it.
    """
    site = site_files()
    metadata_path = metadata_path or str(site.metadata)
    plugins_dir = plugins_dir or str(site.plugins)
    templates_dir = templates_dir or str(site.templates)
    if config_path is None and not Path(DEFAULT_CONFIG_PATH).exists():
        config = None
        click.echo(f"notice: no {DEFAULT_CONFIG_PATH} here: the pages name no query, site or repository", err=True)
    else:
        config = _load_config(config_path or DEFAULT_CONFIG_PATH)
    try:
        if check_port:
            port_free(host, port)
            return
        check_files(db_path, metadata_path, plugins_dir)
        # Before saying "Serving at": Datasette would fail only after starting, with a traceback.
        port_free(host, port)
        # The pages show the configured query, title, site and repository (harvest/site_config.py).
        rendered = write_metadata(load_rendered_metadata(metadata_path, config))
        mode, reason = choose_mode(db_path, immutable=immutable)
        if mode == LIVE:
            enable_wal(db_path)
        argv = datasette_argv(
            served_path(db_path), metadata_path=rendered, plugins_dir=plugins_dir, templates_dir=templates_dir,
            host=host, port=port, mode=mode,
        )
    except (ServeError, SiteError, OSError) as error:
        raise click.ClickException(f"serve: {error}")
    click.echo(f"Serving {db_path} at {site_url(host, port)} {mode} ({reason}; Ctrl-C to stop)")
    sys.stdout.flush()
    sys.stderr.flush()
    # Become the Datasette process, so Ctrl-C and kill reach it directly.
    os.execv(argv[0], argv)

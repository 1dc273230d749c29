"""Datasette plugin: serve a file that a harvest writes meanwhile (`ai4mat serve`'s live mode).

The snapshots and the download are active only for databases served mutable (live mode, the
file in WAL journal mode); an immutable instance (`--immutable`, `scripts/publish.sh`) keeps
Datasette's own reads and download. Both get the per-request time limit.

- One time limit per request: Datasette limits each statement to sql_time_limit_ms, so a table
  page's rows, count and facets could add up to several times the limit; here all of one
  request's SQL shares it (BudgetedConnection).
- One state per request: a page runs several statements (rows, count, facets), possibly on
  several of Datasette's connections, and a commit between two of them would show a count
  from one state beside rows from another. Here every statement of one request runs on one
  connection inside one read transaction, so it sees the snapshot its first statement saw; the
  next request starts a new one and sees the latest commit.
- The download `/<db>.db`, which Datasette refuses (403) for a mutable file, answers a copy of
  one committed state made with SQLite's backup API, switched to rollback (DELETE) journal mode
  so it opens anywhere, read-only folders included. The copy is made once per committed state
  (`PRAGMA data_version`) and its ETag changes whenever the state does.

Relies on Datasette 0.65's `Database.execute_fn` (every read goes through it); tests check a
page's count against its facets while a harvest commits.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import re
import secrets
import sqlite3
import tempfile
import threading
import time
from pathlib import Path

from datasette import hookimpl
from datasette.database import Database
from datasette.utils.asgi import Response

_request_snapshot: contextvars.ContextVar["RequestSnapshot | None"] = contextvars.ContextVar("ai4mat_snapshot", default=None)
_original_execute_fn = Database.execute_fn
CHUNK = 1 << 20
GRACE_SECONDS = 0.02
MAX_RESULT_BYTES = 32_000_000


def _is_live(database: Database) -> bool:
    return database.is_mutable and not database.is_memory and database.path is not None


class ConnectionPool:
    """Read connections of one database, reused across requests (one per concurrent request)."""

    def __init__(self, database: Database):
        self.database = database
        self.idle: list[sqlite3.Connection] = []
        self.lock = threading.Lock()

    def take(self) -> sqlite3.Connection:
        with self.lock:
            if self.idle:
                return self.idle.pop()
        conn = self.database.connect()
        self.database.ds._prepare_connection(conn, self.database.name)
        return conn

    def give_back(self, conn: sqlite3.Connection) -> None:
        if conn.in_transaction:
            conn.rollback()  # ends the read transaction: the next request sees the latest commit
        with self.lock:
            self.idle.append(conn)


_pools: dict[int, ConnectionPool] = {}


def _pool(database: Database) -> ConnectionPool:
    pool = _pools.get(id(database))
    if pool is None:
        pool = _pools[id(database)] = ConnectionPool(database)
    return pool


class BudgetedConnection:
    """A connection whose progress handlers also stop at the request's deadline.

    Datasette gives each statement its own sql_time_limit_ms, so a table page (rows, count,
    facets, suggested facets) could run several times the limit in all; with this the whole
    request's SQL shares one limit (statements started after it get GRACE_SECONDS each). A
    statement cut by it ends as one cut by Datasette's own limit: "SQL query took too long",
    or a count or facet left out.
    """

    def __init__(self, conn: sqlite3.Connection, deadline: float):
        self._conn, self._deadline = conn, deadline
        self._cursors: list[sqlite3.Cursor] = []

    def set_progress_handler(self, handler, n):
        if handler is None:
            return self._conn.set_progress_handler(None, n)
        # A statement started after the deadline still gets a moment: the page's own small
        # look-ups (hidden tables, menu links) must not turn a cut-off page into a 500.
        deadline = max(self._deadline, time.perf_counter() + GRACE_SECONDS)

        def within_both():
            return handler() or (1 if time.perf_counter() >= deadline else 0)

        return self._conn.set_progress_handler(within_both, n)

    def cursor(self, *args):
        cursor = self._conn.cursor(*args)
        self._cursors.append(cursor)
        return SizedCursor(cursor)

    def execute(self, *args):
        cursor = self._conn.execute(*args)
        self._cursors.append(cursor)
        return cursor

    def run(self, fn):
        """fn(self), then close every cursor it opened, on this (the connection's) thread.

        A cursor left mid-statement (a page cut at max_returned_rows, an error or an interrupt
        raised between fetches) is often kept alive by an exception's traceback cycle; the
        garbage collector then frees it on whichever thread it runs, usually the event loop's,
        and resetting its statement waits for the connection's mutex. If that connection is
        meanwhile running a long query, the whole server stalled until the query ended (up to
        sql_time_limit_ms). A closed cursor holds no statement, so freeing it anywhere is free.
        """
        try:
            return fn(self)
        finally:
            for cursor in self._cursors:
                cursor.close()
            self._cursors.clear()

    def __getattr__(self, name):
        return getattr(self._conn, name)


class SizedCursor:
    """A cursor whose fetches fail once one statement's values pass MAX_RESULT_BYTES.

    SQLite's length limit bounds one value (plugins/ai4mat_limits.py), not a result: 1,000 rows
    of 0.9 MB each would still be a gigabyte of JSON. A full page of the largest real papers is
    far below: the 1,000 largest of the 1,448 in tests/fixtures/ai4mat add up to 1.9 MB.
    """

    def __init__(self, cursor: sqlite3.Cursor):
        self._cursor, self._bytes = cursor, 0

    def _counted(self, row):
        if row is not None:
            self._bytes += sum(len(value) for value in row if isinstance(value, (str, bytes)))
            if self._bytes > MAX_RESULT_BYTES:
                raise sqlite3.DataError(f"result too big: more than {MAX_RESULT_BYTES // 1_000_000} MB; add a LIMIT or download the file")
        return row

    def fetchone(self):
        return self._counted(self._cursor.fetchone())

    def fetchmany(self, size=None):
        rows = []
        for _ in range(self._cursor.arraysize if size is None else size):
            row = self.fetchone()
            if row is None:
                break
            rows.append(row)
        return rows

    def fetchall(self):
        return list(iter(self.fetchone, None))

    def __iter__(self):
        return iter(self.fetchone, None)

    def __getattr__(self, name):
        return getattr(self._cursor, name)


# How long a file must have been left unwritten before its size and modification times name
# the state a read transaction sees. A commit is readable once the writer publishes it in the
# WAL index, just after writing its last frame; a reader that starts in between sees the old
# state through files that already look new. Assumed: no writer takes this long in between.
SETTLED_SECONDS = 5.0


def file_state(path: str) -> tuple:
    """Size and modification time (ns) of the file and of its -wal: every commit changes them."""
    state: list = []
    for name in (path, path + "-wal"):
        try:
            stat = os.stat(name)
            state += [stat.st_size, stat.st_mtime_ns]
        except OSError:
            state += [None, None]
    return tuple(state)


def begin_settled(conn: sqlite3.Connection, path: str, settled_seconds: float) -> tuple | None:
    """BEGIN and take the read snapshot now. Returns the files' state, which then names the
    committed state the snapshot reads, or None when that cannot be told: the files changed
    while the snapshot was taken, or less than `settled_seconds` before."""
    before = file_state(path)
    conn.execute("BEGIN")
    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # a read: the snapshot is taken here
    if file_state(path) != before:
        return None
    written = max((value for value in before[1::2] if value is not None), default=None)
    if written is None or time.time_ns() - written < settled_seconds * 1e9:
        return None
    return before


class RequestSnapshot:
    """The connections one request reads through, each inside one read transaction, and the
    deadline its SQL shares (sql_time_limit_ms from its first statement).

    `state_of(database)` names the committed state the request reads when the file had been
    left unwritten for SETTLED_SECONDS (else None): equal names, equal data, so other plugins
    may cache what they compute from it (plugins/ai4mat_facets.py finds this object in the
    request's ASGI scope under "ai4mat.snapshot").
    """

    settled_seconds = SETTLED_SECONDS

    def __init__(self):
        self.connections: dict[int, tuple[ConnectionPool, sqlite3.Connection]] = {}
        self.states: dict[int, tuple | None] = {}
        self.thread_lock = threading.Lock()
        self.async_lock = asyncio.Lock()
        self.deadline: float | None = None

    def budgeted(self, database: Database, conn: sqlite3.Connection) -> BudgetedConnection:
        if self.deadline is None:
            self.deadline = time.perf_counter() + database.ds.sql_time_limit_ms / 1000
        return BudgetedConnection(conn, self.deadline)

    def run(self, database: Database, fn):
        with self.thread_lock:
            entry = self.connections.get(id(database))
            if entry is None:
                pool = _pool(database)
                entry = self.connections[id(database)] = (pool, pool.take())
            conn = entry[1]
            if not conn.in_transaction:
                self.states[id(database)] = begin_settled(conn, database.path, self.settled_seconds)
            return self.budgeted(database, conn).run(fn)

    def state_of(self, database: Database) -> tuple | None:
        return self.states.get(id(database))

    @staticmethod
    def begin_settled(conn: sqlite3.Connection, path: str, settled_seconds: float) -> tuple | None:
        return begin_settled(conn, path, settled_seconds)

    def release(self) -> None:
        with self.thread_lock:
            for pool, conn in self.connections.values():
                pool.give_back(conn)
            self.connections.clear()


async def _execute_fn(self: Database, fn):
    snapshot = _request_snapshot.get()
    if snapshot is None or self.ds.executor is None:
        return await _original_execute_fn(self, fn)
    if not _is_live(self):
        # Immutable (or in-memory): nothing to pin, but the request's SQL still shares one limit.
        return await _original_execute_fn(self, lambda conn: snapshot.budgeted(self, conn).run(fn))
    # One statement at a time per request (they share a connection); other requests run
    # on their own connections meanwhile.
    async with snapshot.async_lock:
        return await asyncio.get_running_loop().run_in_executor(self.ds.executor, snapshot.run, self, fn)


Database.execute_fn = _execute_fn

_original_table_counts = Database.table_counts
# (file, named state, limit) -> its tables' counts; the latest state of each file only.
_TABLE_COUNTS: dict[tuple, dict] = {}


async def _table_counts(self: Database, limit: int = 10) -> dict:
    """Datasette's table counts (the database page's "N rows"), counted once per committed state.

    An immutable database counts once at startup; a live one counted every table per request,
    each up to `limit` ms: 0.5-0.6 s of the database page at a million papers. Equal named
    states hold equal tables, so the counts of one request serve every later request that
    reads the same state; a state that cannot be named is counted as before.
    """
    snapshot = _request_snapshot.get()
    if snapshot is None or not _is_live(self):
        return await _original_table_counts(self, limit)
    await self.execute_fn(lambda conn: None)  # the request's snapshot is taken (and named) by now
    state = snapshot.state_of(self)
    if state is None:
        return await _original_table_counts(self, limit)
    path = os.path.realpath(self.path)
    key = (path, state, limit)
    counts = _TABLE_COUNTS.get(key)
    if counts is None:
        counts = await _original_table_counts(self, limit)
        for old in [old for old in _TABLE_COUNTS if old[0] == path and old[1] != state]:
            _TABLE_COUNTS.pop(old, None)
        _TABLE_COUNTS[key] = counts
    return dict(counts)


Database.table_counts = _table_counts


@hookimpl
def asgi_wrapper(datasette):
    def wrap(app):
        async def one_state_per_request(scope, receive, send):
            if scope["type"] != "http":
                return await app(scope, receive, send)
            snapshot = RequestSnapshot()
            token = _request_snapshot.set(snapshot)
            try:
                return await app({**scope, "ai4mat.snapshot": snapshot}, receive, send)
            finally:
                _request_snapshot.reset(token)
                if snapshot.connections:
                    await asyncio.get_running_loop().run_in_executor(datasette.executor, snapshot.release)

        return one_state_per_request

    return wrap


# ---------------------------------------------------------------- the download


class SnapshotFile:
    """A consistent copy of one committed state, held open (its name is already unlinked)."""

    def __init__(self, fd: int, data_version: int, etag: str):
        self.fd, self.data_version, self.etag = fd, data_version, etag
        self.size = os.fstat(fd).st_size


class Snapshots:
    """Makes and caches the download copy of a live database, one per committed state."""

    def __init__(self, database: Database):
        self.database = database
        self.token = secrets.token_hex(6)  # ETags of different server processes never collide
        self.lock = threading.Lock()
        self.current: SnapshotFile | None = None
        self.watch: sqlite3.Connection | None = None

    def latest(self) -> SnapshotFile:
        """The copy of the latest committed state, made now if that state has none yet; its fd is dup'ed."""
        with self.lock:
            if self.watch is None:
                self.watch = sqlite3.connect(f"file:{self.database.path}?mode=ro", uri=True, check_same_thread=False)
            watch = self.watch
            watch.execute("BEGIN")
            try:
                # The read transaction pins one committed state for the version check and the copy.
                watch.execute("SELECT count(*) FROM sqlite_master").fetchone()
                (data_version,) = watch.execute("PRAGMA data_version").fetchone()
                if self.current is None or self.current.data_version != data_version:
                    self._replace(self._copy(watch, data_version))
            finally:
                watch.rollback()
            return SnapshotFile(os.dup(self.current.fd), self.current.data_version, self.current.etag)

    def _copy(self, source: sqlite3.Connection, data_version: int) -> SnapshotFile:
        real = Path(self.database.path).resolve()
        handle, name = tempfile.mkstemp(prefix=f".{real.name}.snapshot-", dir=real.parent)
        os.close(handle)
        try:
            target = sqlite3.connect(name)
            try:
                source.backup(target)
                # The copy's header says WAL like the original; a published file must open anywhere.
                target.execute("PRAGMA journal_mode = DELETE").fetchone()
            finally:
                target.close()
            fd = os.open(name, os.O_RDONLY)
        finally:
            os.unlink(name)  # the open descriptor keeps the data; nothing is left behind on a crash
        return SnapshotFile(fd, data_version, f'"{self.token}-{data_version}"')

    def _replace(self, snapshot: SnapshotFile) -> None:
        if self.current is not None:
            os.close(self.current.fd)  # downloads in flight hold their own dup
        self.current = snapshot


_snapshots: dict[int, Snapshots] = {}


class FileResponse:
    """Streams an open descriptor (closed at the end), for Datasette's plugin routes."""

    def __init__(self, snapshot: SnapshotFile, filename: str, headers: dict, head_only: bool):
        self.snapshot, self.filename, self.headers, self.head_only = snapshot, filename, headers, head_only

    async def asgi_send(self, send):
        loop = asyncio.get_running_loop()
        fd = self.snapshot.fd
        try:
            headers = {
                **self.headers,
                "content-type": "application/octet-stream",
                "content-length": str(self.snapshot.size),
                "content-disposition": f'attachment; filename="{self.filename}"',
            }
            await send({
                "type": "http.response.start", "status": 200,
                "headers": [(key.encode(), value.encode()) for key, value in headers.items()],
            })
            offset = 0
            while not self.head_only and offset < self.snapshot.size:
                chunk = await loop.run_in_executor(None, os.pread, fd, CHUNK, offset)
                if not chunk:
                    break
                offset += len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": offset < self.snapshot.size})
            if self.head_only or offset == 0:
                await send({"type": "http.response.body", "body": b""})
        finally:
            os.close(fd)


async def download(datasette, request):
    name = request.url_vars["database"]
    database = datasette.databases.get(name)
    if database is None or not _is_live(database) or not datasette.setting("allow_download"):
        return Response.text("Not found", status=404)
    snapshots = _snapshots.get(id(database))
    if snapshots is None:
        snapshots = _snapshots[id(database)] = Snapshots(database)
    snapshot = await asyncio.get_running_loop().run_in_executor(None, snapshots.latest)
    headers = {"etag": snapshot.etag, "cache-control": "no-cache"}
    if datasette.cors:
        headers["access-control-allow-origin"] = "*"
    if request.headers.get("if-none-match") == snapshot.etag:
        os.close(snapshot.fd)
        return Response("", status=304, headers=headers)
    return FileResponse(snapshot, f"{name}.db", headers, request.method == "HEAD")


@hookimpl
def register_routes(datasette):
    # Plugin routes come before Datasette's own, so this answers /<db>.db for live databases;
    # an immutable instance keeps Datasette's download (the file itself).
    live = [name for name, database in datasette.databases.items() if _is_live(database)]
    if not live:
        return []
    names = "|".join(map(re.escape, live))
    return [(rf"^/(?P<database>{names})\.db$", download)]

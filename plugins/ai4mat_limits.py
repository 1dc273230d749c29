"""Datasette plugin: SQLite's own limits on every connection the site reads through.

Datasette's time limit is a progress handler, checked between SQLite's virtual-machine steps,
so one step that builds a huge value (`zeroblob(1e8)`, `randomblob(1e9)`, `printf('%.*c',
1000000000, 'x')`) ran for seconds past it and took gigabytes. With SQLITE_LIMIT_LENGTH such a
step fails at once with "string or blob too big" (a 400), before allocating. The limit is far
above any value the dataset holds: the largest whole paper among the 1,448 real ones in
tests/fixtures/ai4mat is 4.4 KB, and the hostile tests' 100 KB abstract is served whole.

One case the limit does not stop in SQLite 3.40: printf's `%c` with a huge precision keeps
looping a character at a time after the buffer is refused (0.7 s per 10^8, inside one step),
then returns NULL. printf and its alias format are therefore wrapped: a width or precision above
the limit is refused at once, and anything else is passed to SQLite's own printf.
"""

from __future__ import annotations

import re
import sqlite3
import threading

from datasette import hookimpl

MAX_LENGTH = 1_000_000  # bytes in one string, blob or row
LIMITS = {
    sqlite3.SQLITE_LIMIT_LENGTH: MAX_LENGTH,
    sqlite3.SQLITE_LIMIT_SQL_LENGTH: 100_000,  # bytes of SQL text: a URL-sized query, with room
}
# Returned in place of a refused result: SQLite itself then fails the statement with
# SQLITE_TOOBIG ("string or blob too big"), checking the size before copying anything.
TOO_BIG = b"\0" * (MAX_LENGTH + 1)

# One conversion of SQLite's printf: flags, width, precision, length modifiers, the conversion.
_CONVERSION = re.compile(r"%([-+ 0#!,]*)(\*|\d+)?(?:\.(\*|\d+)?)?(l{0,2})(.)", re.S)
_builtin = threading.local()


def _checked_size(value) -> int:
    try:
        return abs(int(value))
    except (TypeError, ValueError, OverflowError):
        return 0


def printf(fmt, *args):
    """SQLite's printf, but a width or precision above MAX_LENGTH fails at once with SQLITE_TOOBIG."""
    if fmt is None:
        return None
    arg = 0
    for match in _CONVERSION.finditer(str(fmt)):
        _, width, precision, _, conversion = match.groups()
        for size in (width, precision):
            if size == "*":
                size = args[arg] if arg < len(args) else 0
                arg += 1
            if size is not None and _checked_size(size) > MAX_LENGTH:
                return TOO_BIG
        if conversion not in "%n":
            arg += 1
    conn = getattr(_builtin, "conn", None)
    if conn is None:
        # A private connection that still has SQLite's own printf (the site's are overridden).
        conn = _builtin.conn = sqlite3.connect(":memory:", check_same_thread=False)
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_LENGTH)
    (result,) = conn.execute(f"SELECT printf({', '.join('?' * (len(args) + 1))})", (fmt, *args)).fetchone()
    if result is None:
        return TOO_BIG  # SQLite's printf gives NULL for a result above the limit
    return result


@hookimpl
def prepare_connection(conn):
    for limit, value in LIMITS.items():
        conn.setlimit(limit, value)
    for name in ("printf", "format"):
        conn.create_function(name, -1, printf, deterministic=True)


@hookimpl
def handle_exception(datasette, request, exception):
    """A refused value is the query's fault: 400, like any other bad SQL, never a 500.

    (The query page already answers 400; table views with `_where=` let SQLite's DataError
    through as a server error.)
    """
    if isinstance(exception, sqlite3.DataError):
        from datasette.handle_exception import handle_exception as default
        from datasette.views.base import DatasetteError

        return default(datasette, request, DatasetteError(str(exception), title="Invalid SQL", status=400))
    return None

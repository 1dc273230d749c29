"""Datasette plugin: a table-view argument a user typed wrong answers 400, not 500.

Datasette 0.65 answers 500 ("internal error") for `?_sort=nonexistent`, `?_sort=a&_sort_desc=b`,
a `?_through=` that is not the JSON it expects, `?_timelimit=abc` and `?title__in=[`. These are
the user's mistakes, not the server's: this answers them 400 with Datasette's own error page or
JSON, and a one-line message saying what was wrong. Any other exception is left to Datasette.

Loaded with `datasette --plugins-dir plugins`: imports only Datasette and the standard library.
"""

from __future__ import annotations

import json

from datasette import hookimpl
from datasette.handle_exception import handle_exception as datasette_handle_exception
from datasette.utils.asgi import Base400, BadRequest
from datasette.views.base import DatasetteError

# Datasette's own messages for bad table-view arguments, raised as 500s.
USER_ERROR_PREFIXES = ("Cannot sort table by", "Cannot use _sort and _sort_desc", "Invalid _through")
THROUGH_SHAPE = '{"table": "paper_categories", "column": "category", "value": "cs.LG"}'


def _through_problem(argument: str) -> str | None:
    try:
        through = json.loads(argument)
    except ValueError:
        return f"_through={argument}: not JSON; expected {THROUGH_SHAPE}"
    if (
        not isinstance(through, dict)
        or not isinstance(through.get("table"), str)
        or not isinstance(through.get("column"), str)
        or "value" not in through
        or isinstance(through["value"], (dict, list))
    ):
        return f"_through={argument}: expected {THROUGH_SHAPE}"
    return None


def _in_problem(key: str, value: str) -> str | None:
    if value.startswith("["):
        try:
            if isinstance(json.loads(value), list):
                return None
        except ValueError:
            pass
        return f"{key}={value}: expected a JSON list or comma-separated values"
    return None


def _raw_search_problem(request, exception) -> str | None:
    """What was wrong with a `?_search=` taken as FTS5 syntax (`_searchmode=raw`), which
    Datasette reports only as "Invalid SQL: unterminated string"."""
    if request.args.get("_searchmode") != "raw" or exception.status != 400 or exception.title != "Invalid SQL":
        return None
    searches = [(key, request.args.get(key)) for key in request.args if key == "_search" or key.startswith("_search_")]
    if not searches:
        return None
    key, value = searches[0]
    return (f"{key}={value}: not a valid FTS5 query ({exception.message}); "
            "without _searchmode=raw the words are searched as typed")


def user_error(request, exception) -> str | None:
    """The message for a 500 that a malformed argument of `request` caused, else None."""
    if isinstance(exception, Base400):
        return None
    if isinstance(exception, DatasetteError):
        raw_search = _raw_search_problem(request, exception)
        if raw_search:
            return raw_search
        if exception.status != 500:
            return None
        if str(exception.message).startswith(USER_ERROR_PREFIXES):
            return exception.message
    for key in request.args:
        for each in request.args.getlist(key):
            problem = None
            if key == "_through":
                problem = _through_problem(each)
            elif key == "_timelimit" and not each.isdigit():
                problem = f"_timelimit={each}: expected a whole number of milliseconds"
            elif key.endswith(("__in", "__notin")):
                problem = _in_problem(key, each)
            if problem:
                return problem
    return None


@hookimpl
def handle_exception(datasette, request, exception):
    message = user_error(request, exception)
    if message is None:
        return None
    return datasette_handle_exception(datasette, request, BadRequest(message))

"""Datasette plugin: the published dataset answers only GET, HEAD and OPTIONS.

The file is served immutable and no canned query writes, so no other method has a use. It also
spares a Datasette 0.65 bug: a POST to a read-only canned query answers 500 instead of 405.
"""

from __future__ import annotations

from datasette import hookimpl

READ_METHODS = ("GET", "HEAD", "OPTIONS")


@hookimpl
def asgi_wrapper(datasette):
    def wrap(app):
        async def read_only(scope, receive, send):
            if scope["type"] != "http" or scope["method"] in READ_METHODS:
                return await app(scope, receive, send)
            await send({
                "type": "http.response.start",
                "status": 405,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"allow", ", ".join(READ_METHODS).encode())],
            })
            await send({"type": "http.response.body", "body": b"Method not allowed: this dataset is read-only\n"})

        return read_only

    return wrap

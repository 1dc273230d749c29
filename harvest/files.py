"""Read the small local files a user names (config.json, README.md) safely.

`--db` is checked by harvest/store.py before SQLite opens it; these files we read ourselves.
"""

from __future__ import annotations

import os
import stat


class LocalFileError(Exception):
    """The file cannot be used; the message (without the path) says why."""


def read_small_file(path: str | os.PathLike, *, max_bytes: int) -> bytes:
    """The whole content of the regular file at `path`, at most `max_bytes` long.

    Raises FileNotFoundError if it is missing, LocalFileError for a directory, a named pipe, a
    device or a larger file, and OSError for anything else. Never blocks and never reads more
    than `max_bytes` + 1 bytes: opening a named pipe would wait for a writer forever, and
    /dev/zero never ends.
    """
    # O_NONBLOCK: opening a pipe for reading returns at once instead of waiting for a writer.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)  # of what was opened, so a file swapped in after a check cannot slip by
        if stat.S_ISDIR(info.st_mode):
            raise LocalFileError("is a directory, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise LocalFileError("not a regular file (a pipe or device); refusing to read it")
        if info.st_size > max_bytes:
            raise LocalFileError(f"{info.st_size:,} bytes, too large to be this file (at most {max_bytes:,}); refusing to read it")
        chunks, size = [], 0
        while size <= max_bytes:
            chunk = os.read(fd, max_bytes + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > max_bytes:  # it grew while we read
            raise LocalFileError(f"more than {max_bytes:,} bytes, too large to be this file; refusing to read it")
        return b"".join(chunks)
    finally:
        os.close(fd)

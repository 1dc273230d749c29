"""`ai4mat serve` and `make serve` on a port already in use: one line naming --port and PORT=, before anything else."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from harvest.store import open_db

from .site_data import METADATA_PATH, ROOT, free_port


@pytest.fixture
def held_port():
    """A port on 127.0.0.1 that a test socket listens on for the test."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


@pytest.fixture
def db_file(tmp_path):
    path = tmp_path / "ai4mat.db"
    open_db(path).close()
    return path


def ai4mat(*args: str, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harvest", *args], cwd=cwd, capture_output=True, text=True, timeout=60,
    )


def in_use(port: int) -> str:
    return f"Error: serve: port {port} is already in use on 127.0.0.1; choose another with --port (with make: make serve PORT={port + 1})\n"


def test_serve_on_a_port_in_use_fails_in_one_line_before_serving(held_port, db_file):
    result = ai4mat("serve", "--db", str(db_file), "--port", str(held_port), "--metadata", str(METADATA_PATH))
    assert (result.returncode, result.stdout, result.stderr) == (1, "", in_use(held_port))


def test_check_port_only_checks_the_port(held_port, db_file):
    checked = ai4mat("serve", "--check-port", "--port", str(held_port))
    assert (checked.returncode, checked.stdout, checked.stderr) == (1, "", in_use(held_port))
    # A free port passes silently, with or without a database (the first `make serve` has none yet).
    free = ai4mat("serve", "--check-port", "--port", str(free_port()), "--db", str(db_file.parent / "missing.db"))
    assert (free.returncode, free.stdout, free.stderr) == (0, "", "")


def test_a_port_just_released_is_free_again(db_file):
    """A server that just stopped leaves its port in TIME_WAIT; uvicorn can bind it, so the check must too."""
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn sets it
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as client:
            accepted, _ = server.accept()
            accepted.close()  # the server side closes first: its end of the connection waits in TIME_WAIT
            client.recv(1)
    checked = ai4mat("serve", "--check-port", "--port", str(port))
    assert (checked.returncode, checked.stderr) == (0, "")


def test_make_serve_checks_the_port_before_harvesting(held_port, tmp_path):
    """`make serve PORT=<in use>` stops at once: no harvest (which would take minutes), no README rewrite."""
    before = {name: (ROOT / name).stat().st_mtime_ns for name in ("README.md",) if (ROOT / name).exists()}
    database = ROOT / "ai4mat.db"
    database_before = database.stat().st_mtime_ns if database.exists() else None
    env = {**os.environ, "ARXIV_API_URL": f"http://127.0.0.1:{free_port()}/api/query"}  # never the real arXiv
    # This interpreter's environment as make's, never reinstalled (-o: taken as up to date).
    venv = sys.prefix
    result = subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), "-o", f"{venv}/.installed", "serve",
         f"VENV={venv}", f"PORT={held_port}", "HOST=127.0.0.1"],
        capture_output=True, text=True, timeout=600, env=env,
    )
    assert result.returncode != 0
    assert in_use(held_port) in result.stderr
    assert "harvest" not in result.stdout + result.stderr.replace(in_use(held_port), "")
    assert {name: (ROOT / name).stat().st_mtime_ns for name in before} == before
    assert (database.stat().st_mtime_ns if database.exists() else None) == database_before

"""Fixtures of the run tests: one PostgreSQL server per test session (tests/postgres.py), a fresh database per
test. Under CI=true a missing PostgreSQL fails the tests; elsewhere they skip and say why."""

from __future__ import annotations

import os

import pytest

from tests.postgres import PostgresServer, bin_dir


def _missing(why: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{why}; CI runs the PostgreSQL tests (.ci/run installs Debian's postgresql package)")
    pytest.skip(f"{why}: install Debian's postgresql package (apt-get install postgresql) to run them")


@pytest.fixture(scope="session")
def pg_server():
    """A PostgreSQL server for the whole session (started on first use, ~2 s)."""
    bindir = bin_dir()
    if bindir is None:
        _missing("PostgreSQL is not installed (no pg_ctl)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _missing("psycopg is not installed (layerlab[cluster])")
    server = PostgresServer(bindir)
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg_server) -> str:
    """The URL of a new empty database on the session's server."""
    return pg_server.database()

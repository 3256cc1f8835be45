"""Shared fixtures: a migrated database per test and the local fake Graph API."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.db import dispose_engines
from bot.fake_graph_api import FakeGraphServer
from bot.migrations import upgrade
from tests import servers
from tests.servers import PostgresServer, RedisServer, or_skip

# Rasa refuses to read endpoints.yml while a ${VAR} in it is unset, and tests read it in-process
# (tests/test_rasa_stores.py); the servers the tests start get their own (tests/rasa_servers.py).
os.environ.setdefault("ACTION_SERVER_TOKEN", "tests-action-server-token")


@pytest.fixture(autouse=True, scope="session")
def sanic_touch_up_once() -> Iterator[None]:
    """Sanic's test client starts the app again for every request, and each start has Sanic's
    TouchUp recompile the same request-handling methods from their source: measured at ~40 % of
    the time of the in-process HTTP tests (tests/test_webhook.py and test_opt_out_link_routes.py
    under cProfile). What it compiles depends only on which signals have handlers (Sanic 21.12:
    its one scheme drops `dispatch` calls of signals nobody handles) and on what it touches up,
    so a start that would compile exactly what the last one did keeps the methods as they are;
    any other start is touched up as before."""
    from sanic.touchup import TouchUp

    original = TouchUp.__dict__["run"]
    last: list[object] = []

    def run(app: Any) -> None:
        key = (frozenset(signal.path for signal in app.signal_router.routes), frozenset(TouchUp._registry))
        if last == [key]:
            return
        original.__func__(TouchUp, app)
        last[:] = [key]

    TouchUp.run = run  # type: ignore[method-assign]
    yield
    TouchUp.run = original  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite database migrated to head once per session: running the migrations took most of
    a store test's time, and a copy of the file is the same database."""
    path = tmp_path_factory.mktemp("migrated") / "bot.sqlite3"
    url = f"sqlite:///{path}"
    upgrade(url)
    dispose_engines(url)  # the last connection closed: everything is in the file itself
    return path


@pytest.fixture
def sqlite_url(tmp_path, monkeypatch, migrated_sqlite: Path) -> str:
    """A fresh, migrated SQLite database that DATABASE_URL points at."""
    path = tmp_path / "bot.sqlite3"
    shutil.copy(migrated_sqlite, path)
    url = f"sqlite:///{path}"
    monkeypatch.setenv("DATABASE_URL", url)
    return url


@pytest.fixture
def fake_graph() -> Iterator[FakeGraphServer]:
    server = FakeGraphServer().start()
    yield server
    server.stop()


# --- customer store: the same tests on SQLite and on a throwaway PostgreSQL ---


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A private PostgreSQL on loopback for the whole session, or a skip saying what is missing."""
    with or_skip(servers.postgres_server()) as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db_url(request: pytest.FixtureRequest, tmp_path, monkeypatch) -> str:
    """A fresh, empty (unmigrated) database that DATABASE_URL points at, on SQLite and on the
    session's PostgreSQL: migration tests take it to the revision they start from."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres_server").create_database()
    monkeypatch.setenv("DATABASE_URL", url)
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """A fresh, migrated database that DATABASE_URL points at; one test, one database, because
    what the store writes (opt-outs, consent history) can never be deleted."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_db_url"
    return request.getfixturevalue(fixture)


@pytest.fixture
def postgres_db_url(postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh, migrated database on the session's PostgreSQL that DATABASE_URL points at."""
    url = postgres_server.create_database()
    monkeypatch.setenv("DATABASE_URL", url)
    upgrade(url)
    yield url
    dispose_engines(url)


# --- Redis (lock store): a throwaway redis-server for the session, or a skip saying what is missing ---


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with or_skip(servers.redis_server()) as server:
        yield server


# Fixtures that start a server process: a test using any of them, or the PostgreSQL half of a
# fixture parametrised over both databases (it asks for the server at run time), is not in
# `make fast`. Tests that start processes of their own say so with `pytest.mark.servers`.
SERVER_FIXTURES = {"postgres_server", "redis_server", "own_postgres"}  # own_postgres: test_rasa_stores.py


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that starts the bot may wait STARTUP_TIMEOUT for Rasa to load its model (minutes on a
    busy shared machine), more than the suite's 300 s per test: its own timeout leaves room for
    the load and the test. Tests that set a timeout of their own keep it."""
    from tests.rasa_servers import STARTUP_TIMEOUT

    for item in items:
        if item.get_closest_marker("rasa") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(STARTUP_TIMEOUT + 300))
        if _starts_a_server(item):
            item.add_marker(pytest.mark.servers)


def _starts_a_server(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    return bool(
        item.get_closest_marker("rasa")
        or SERVER_FIXTURES & set(getattr(item, "fixturenames", ()))
        or (callspec and "postgresql" in callspec.params.values())
    )

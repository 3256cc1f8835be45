"""Database access: one engine per URL, short-lived transactions, and a way off the event loop.

DATABASE_URL picks the database (SQLite file under var/ by default; PostgreSQL in production).
SQLAlchemy 1.4 is synchronous, so async callers (the Sanic webhook, rasa-sdk actions) run database
work through `run_sync`, in a worker thread, and never block the loop that serves requests.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import Table, bindparam, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, create_engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import QueuePool
from sqlalchemy.sql.expression import Insert, TextClause

from bot import VAR_DIR, settings
from bot.private_files import private_dir, private_sqlite_file

P = ParamSpec("P")
T = TypeVar("T")


def database_url() -> str:
    # DATABASE_URL alone, read on every call (every transaction): tests point it at a fresh
    # database per test, and reading one variable costs ~1 µs where `settings.from_env()` costs ~70.
    url = settings.database_url()
    if url:
        return url
    private_dir(VAR_DIR)
    return f"sqlite:///{VAR_DIR / 'bot.sqlite3'}"


def _configure_sqlite(dbapi_connection, _record) -> None:
    # WAL lets the Rasa server and the action server read while the other writes; the busy
    # timeout makes concurrent writers wait for the lock instead of failing at once.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _configure_sqlite_bookkeeping(dbapi_connection, record) -> None:
    _configure_sqlite(dbapi_connection, record)
    # No fsync at commit (see `engine_for`'s `durable`); SQLite's recommended setting for WAL.
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")


def _configure_sqlite_no_wait(dbapi_connection, record) -> None:
    _configure_sqlite_bookkeeping(dbapi_connection, record)
    # On the event loop (`run_soon`): a locked database fails at once instead of stalling the loop.
    dbapi_connection.execute("PRAGMA busy_timeout=0")


# Bookkeeping on PostgreSQL: commit without waiting for the WAL flush (see `engine_for`).
ASYNC_COMMIT = {"options": "-c synchronous_commit=off"}


def engine_for(url: str, durable: bool = True, wait: bool = True) -> Engine:
    """The engine (connection pool) for `url`.

    `durable=False` is for bookkeeping that the next message or a retry would write again: the
    channel's claim of an inbound message (dedupe, the sender's sighting) and its end. Its
    commits do not wait for the disk (SQLite `synchronous=NORMAL` in WAL mode, PostgreSQL
    `synchronous_commit=off`): an operating-system crash or power cut may undo the last ones,
    never corrupt the database nor break its order; a process crash loses nothing. It saved
    ~1 ms of CPU per inbound message on SQLite (docs/benchmarks.md). Consent (tags, opt-out
    requests, consent history) is never written through it: those commits wait for the disk,
    and since the log is written in order, everything committed before them is durable too.

    `wait=False` (SQLite bookkeeping only): a locked database is an error at once (`run_soon`).
    """
    # Positionally: the cache tells engine_for(url) and (url, True) apart.
    return _engine(url, durable, wait or durable or not url.startswith("sqlite"))


@functools.lru_cache(maxsize=16)
def _engine(url: str, durable: bool, wait: bool) -> Engine:
    # hide_parameters: a failed statement's values (phone numbers) stay out of logged errors.
    if url.startswith("sqlite"):
        private_sqlite_file(url)
        # SQLAlchemy 1.4 pools no SQLite file connections by default: every transaction would
        # reconnect and rerun the PRAGMAs below, several times per webhook.
        engine = create_engine(
            url,
            future=True,
            hide_parameters=True,
            poolclass=QueuePool,
            connect_args={"check_same_thread": False},
        )
        configure = (
            _configure_sqlite
            if durable
            else _configure_sqlite_bookkeeping
            if wait
            else _configure_sqlite_no_wait
        )
        event.listen(engine, "connect", configure)
        return engine
    return create_engine(
        url,
        future=True,
        hide_parameters=True,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=10,
        connect_args={} if durable or not url.startswith("postgresql") else ASYNC_COMMIT,
    )


def get_engine() -> Engine:
    return engine_for(database_url())


def dispose_engines(url: str) -> None:
    """Close the pooled connections of every engine for `url` (before a database is dropped)."""
    for durable, wait in ((True, True), (False, True), (False, False)):
        engine_for(url, durable, wait).dispose()


# Set while `run_soon` runs its function on the event loop: bookkeeping must not wait for a lock.
_ON_LOOP: ContextVar[bool] = ContextVar("on_loop", default=False)


@contextmanager
def transaction(engine: Engine | None = None, *, durable: bool = True) -> Iterator[Connection]:
    """One short transaction: commit on success, roll back on any error. `durable=False`: a
    bookkeeping transaction, whose commit does not wait for the disk (`engine_for`)."""
    with (engine or engine_for(database_url(), durable, not _ON_LOOP.get())).begin() as connection:
        yield connection


async def run_sync(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    return await asyncio.to_thread(func, *args, **kwargs)


async def run_soon(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Bookkeeping (`transaction(durable=False)` only) the cheapest way: on SQLite, on the event
    loop itself, unless the database is locked by another writer, and then in a thread like
    `run_sync` (which waits for the lock). Elsewhere always in a thread (PostgreSQL is a network
    round trip). Why: under load the event loop holds the GIL, and a worker thread's SQLite calls,
    each of which hands the GIL back and forth, cost ~2.5 times their CPU in the server
    (docs/benchmarks.md). `func` must be idempotent: a locked attempt is rolled back and run again.
    """
    if database_url().startswith("sqlite"):
        token = _ON_LOOP.set(True)
        try:
            return func(*args, **kwargs)
        except OperationalError as error:
            if "locked" not in str(error.orig):
                raise
        finally:
            _ON_LOOP.reset(token)
    return await run_sync(func, *args, **kwargs)


def scrub_deleted(conn: Connection) -> None:
    """On SQLite, make this connection overwrite what it deletes or replaces with zeros (by default
    SQLite leaves deleted rows readable in free pages): for an erasure. PostgreSQL keeps old row
    versions until VACUUM whatever we do here (docs/consent-records.md)."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("PRAGMA secure_delete = ON")


def checkpoint(url: str) -> None:
    """On SQLite, copy the write-ahead log into the database and truncate it, so that the old
    versions of erased rows do not linger in the -wal file; a no-op elsewhere."""
    engine = engine_for(url)
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def insert_or_ignore(conn: Connection, table: Table, values: dict[str, Any]) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING on SQLite and PostgreSQL; True when a row was added.

    Atomic in the database itself, and unlike catching IntegrityError it needs no savepoint
    (pysqlite's savepoints are unreliable, and a failed statement aborts a PostgreSQL transaction).
    """
    statement, defaults = _insert_ignoring(table, frozenset(values))
    return conn.execute(statement, {**defaults, **values}).rowcount == 1


@functools.cache
def _insert_ignoring(table: Table, keys: frozenset[str]) -> tuple[TextClause, dict[str, Any]]:
    """The statement for `keys` and the table's Python-side column defaults that it must fill in.

    A text statement with typed parameters, built and compiled once: SQLAlchemy 1.4's dialect
    INSERTs opt out of its statement cache (`inherit_cache = False`), so an `on_conflict_do_nothing()`
    insert was compiled again on every execution (~0.5 ms of CPU; every inbound message runs one).
    The SQL is the same on SQLite and PostgreSQL.
    """
    defaults: dict[str, Any] = {}
    for column in table.columns:
        if column.name in keys or column.default is None:
            continue
        if not column.default.is_scalar:
            raise NotImplementedError(
                f"{table.name}.{column.name}: only scalar Python defaults are filled in"
            )
        defaults[column.name] = column.default.arg
    names = sorted(keys | defaults.keys())
    sql = (
        f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join(':' + n for n in names)})"
        " ON CONFLICT DO NOTHING"
    )
    return text(sql).bindparams(*(bindparam(n, type_=table.c[n].type) for n in names)), defaults


def insert_ignoring_duplicates(conn: Connection, table: Table) -> Insert:
    """An INSERT into `table` that skips the rows a unique constraint already holds (ON CONFLICT
    DO NOTHING), in the connection's dialect; give it `.values(...)` or `.from_select(...)`. For
    one row, `insert_or_ignore` (compiled once) is the cheaper call."""
    return _ignoring_duplicates(conn.dialect.name, table)


@functools.cache
def _ignoring_duplicates(dialect: str, table: Table) -> Insert:
    return dialect_insert(dialect, table).on_conflict_do_nothing()


def dialect_insert(dialect: str, table: Table) -> postgresql.Insert | sqlite.Insert:
    """The dialect's INSERT (`conn.dialect.name`), which has ON CONFLICT (`on_conflict_do_nothing`,
    `on_conflict_do_update`): SQLite and PostgreSQL spell it the same."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"unsupported database dialect: {dialect}")

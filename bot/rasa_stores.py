"""Rasa's tracker store and lock store, chosen by environment variables (endpoints.yml names them).

endpoints.yml cannot say "PostgreSQL when TRACKER_STORE_URL is set, else SQLite": an unset ${VAR}
there is an error. So it names these classes by module path and they read the environment:

- TRACKER_STORE_URL  SQLAlchemy URL of the conversations; default SQLite `var/tracker.sqlite3`.
- REDIS_URL          `redis://[[user]:password@]host[:port][/db]` (`rediss://` for TLS) for the
                     per-conversation locks; unset: in process memory, right for one Rasa process only.

How Rasa 3.6 builds a store named by module path (rasa/core/tracker_store.py, lock_store.py):
the tracker store as `cls(host=<url:>, domain=..., event_broker=..., **<other keys>)` and the lock
store as `cls(endpoint_config=...)`, in `rasa run`, `rasa shell`, `rasa interactive` and
`rasa export` alike (`rasa test core` keeps its trackers in memory and reads no stores). The agent
then wraps the tracker store in a FailSafeTrackerStore, which turns a failed read into an empty
conversation and a failed write into one kept in memory; `bot.contract.watch_turn` lets the
WhatsApp channel see such a failure and have WhatsApp retry the message instead.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import redis
import sqlalchemy as sa
from rasa.core.brokers.broker import EventBroker
from rasa.core.lock import TicketLock
from rasa.core.lock_store import LOCK_LIFETIME, InMemoryLockStore, LockError, LockStore, RedisLockStore
from rasa.core.tracker_store import SQLTrackerStore, create_engine_kwargs
from rasa.shared.core.domain import Domain
from rasa.shared.core.trackers import DialogueStateTracker
from sqlalchemy.engine import make_url
from sqlalchemy.orm import sessionmaker

from bot import VAR_DIR, rasa_patches
from bot.contract import note_tracker_store_error
from bot.private_files import private_dir, private_sqlite_file
from bot.settings import from_env

logger = logging.getLogger(__name__)

T = TypeVar("T")


DEFAULT_TRACKER_STORE_URL = f"sqlite:///{VAR_DIR / 'tracker.sqlite3'}"


def tracker_store_url(environ: Mapping[str, str] | None = None) -> str:
    return from_env(environ).tracker_store_url or DEFAULT_TRACKER_STORE_URL


def redis_lock_settings(url: str) -> dict[str, Any]:
    """REDIS_URL -> the arguments of Rasa's RedisLockStore. Without a /db path: database 0."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError(f"REDIS_URL must start with redis:// or rediss://, not {parts.scheme or url!r}")
    db = parts.path.lstrip("/") or "0"
    if not db.isdigit():
        raise ValueError(f"REDIS_URL: the database after the '/' must be a number, not {db!r}")
    return {
        "host": parts.hostname or "localhost",
        "port": parts.port or 6379,
        "db": int(db),
        "username": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password else None,
        "use_ssl": parts.scheme == "rediss",
    }


def sanic_workers(environ: Mapping[str, str] | None = None) -> int:
    return from_env(environ).sanic_workers


# --- tracker store --------------------------------------------------------------------------


class TrackerStoreMisconfigured(RuntimeError):
    """TRACKER_STORE_URL cannot be used. Not an ImportError: Rasa would hide that one (see below)."""


@contextmanager
def _noting_errors() -> Iterator[None]:
    try:
        yield
    except Exception as error:
        note_tracker_store_error(error)
        raise


class SQLTrackerStoreFromEnv(SQLTrackerStore):
    """Rasa's SQLTrackerStore on TRACKER_STORE_URL (PostgreSQL in production, SQLite by default)."""

    def __init__(
        self, domain: Domain | None = None, event_broker: EventBroker | None = None, **_endpoint: Any
    ) -> None:
        # Every Rasa process that serves conversations builds its stores (endpoints.yml names them)
        # before its first turn: the place to take the repeated work out of Rasa's turns.
        rasa_patches.apply()
        url = tracker_store_url()
        if url == DEFAULT_TRACKER_STORE_URL:
            private_dir(VAR_DIR)
        private_sqlite_file(url)
        try:
            # A URL passed as `host` is used as it is (SQLTrackerStore.get_db_url).
            super().__init__(domain=domain, host=url, event_broker=event_broker)
        except (ImportError, AttributeError) as error:
            # Rasa answers these two with an in-memory tracker store and a mere warning (a missing
            # psycopg2, say): conversations would vanish on restart and differ between replicas.
            raise TrackerStoreMisconfigured(f"TRACKER_STORE_URL {make_url(url)!r}: {error}") from error
        # Rasa's engine hands out pooled connections untested. After PostgreSQL restarts, each dead
        # one would fail a turn's read, and the agent's FailSafeTrackerStore would carry on with an
        # empty conversation: a "yes" would land outside the confirmation form. Pre-ping replaces
        # dead connections before use. And a failed statement's parameters (the sender id: a phone
        # number) stay out of the error messages that Rasa logs.
        self.engine.dispose()
        self.engine = sa.create_engine(
            url, pool_pre_ping=True, hide_parameters=True, **create_engine_kwargs(url)
        )
        self.sessionmaker = sessionmaker(bind=self.engine)
        logger.info("conversations are kept in %s", self.engine.dialect.name)

    async def retrieve(self, sender_id: str) -> DialogueStateTracker | None:
        with _noting_errors():
            return await super().retrieve(sender_id)

    async def retrieve_full_tracker(self, conversation_id: str) -> DialogueStateTracker | None:
        with _noting_errors():
            return await super().retrieve_full_tracker(conversation_id)

    async def save(self, tracker: DialogueStateTracker) -> None:
        with _noting_errors():
            await super().save(tracker)


# --- lock store -----------------------------------------------------------------------------


class AtomicRedisLockStore(RedisLockStore):
    """Rasa's RedisLockStore, with every change to a conversation's ticket queue made atomic.

    Rasa's version reads the queue, changes it and writes it back in separate commands: safe within
    one process (its event loop runs one change at a time), but two replicas taking a ticket for
    the same conversation at once both read the queue before either writes it, get the same ticket
    and run their turns side by side on the same tracker (8 threads x 50 tickets on one conversation
    got 116 distinct numbers out of 400). Here each change is a WATCH/MULTI/EXEC transaction, read
    again and retried when another process changed the queue in between; an empty queue is deleted.
    """

    def issue_ticket(self, conversation_id: str, lock_lifetime: float = LOCK_LIFETIME) -> int:
        try:
            return self._change(conversation_id, lambda lock: lock.issue_ticket(lock_lifetime))
        except redis.RedisError as error:
            raise LockError(f"Error while acquiring lock. Error:\n{error}") from error

    def update_lock(self, conversation_id: str) -> None:
        self._change(conversation_id, TicketLock.remove_expired_tickets)

    def finish_serving(self, conversation_id: str, ticket_number: int) -> None:
        self._change(conversation_id, lambda lock: lock.remove_ticket_for(ticket_number))

    def cleanup(self, conversation_id: str, ticket_number: int) -> None:
        # finish_serving deletes the queue when it is left empty, in the same transaction.
        self.finish_serving(conversation_id, ticket_number)

    def _change(self, conversation_id: str, change: Callable[[TicketLock], T]) -> T:
        key = self.key_prefix + conversation_id
        with self.red.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    stored = pipe.get(key)
                    lock = (
                        TicketLock.from_dict(json.loads(stored))
                        if stored
                        else self.create_lock(conversation_id)
                    )
                    result = change(lock)
                    pipe.multi()
                    if lock.is_someone_waiting():
                        pipe.set(key, lock.dumps())
                    else:
                        pipe.delete(key)
                    pipe.execute()
                    return result
                except redis.WatchError:
                    continue  # another process changed the queue first: read it again


class LockStoreFromEnv(LockStore):
    """REDIS_URL set: AtomicRedisLockStore; unset: Rasa's InMemoryLockStore (one Rasa process only).

    A factory in the shape of a class, because Rasa instantiates the type endpoints.yml names:
    `__new__` returns the chosen store, and Python then skips `__init__`.
    """

    def __new__(cls, endpoint_config: Any = None) -> LockStore:
        rasa_patches.apply()  # as the tracker store does: whichever Rasa builds first
        return lock_store_for()


def lock_store_for(environ: Mapping[str, str] | None = None) -> LockStore:
    url = from_env(environ).redis_url
    if url:
        settings = redis_lock_settings(url)
        logger.info("conversation locks are kept in Redis at %s:%s", settings["host"], settings["port"])
        return AtomicRedisLockStore(**settings)
    if sanic_workers(environ) > 1:
        # Rasa refuses several workers with its in-memory lock store, but only when endpoints.yml
        # names that store: it cannot see that this one would choose it.
        raise LockError("SANIC_WORKERS > 1 needs REDIS_URL: in-memory locks do not span processes")
    return InMemoryLockStore()

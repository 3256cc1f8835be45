"""endpoints.yml's stores as Rasa builds them: SQLite or PostgreSQL conversations, in-memory or Redis locks."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Iterator

import pytest
from rasa.core.lock_store import InMemoryLockStore, LockError, LockStore
from rasa.core.tracker_store import FailSafeTrackerStore, TrackerStore
from rasa.core.utils import AvailableEndpoints
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.utils.endpoints import read_endpoint_config
from sqlalchemy import text

from bot import PROJECT_ROOT
from bot.contract import watch_turn
from bot.rasa_patches import ACTIONS_MODULE
from bot.rasa_stores import (
    DEFAULT_TRACKER_STORE_URL,
    AtomicRedisLockStore,
    SQLTrackerStoreFromEnv,
    TrackerStoreMisconfigured,
    lock_store_for,
    redis_lock_settings,
    tracker_store_url,
)
from tests.servers import PostgresServer, RedisServer, or_skip, postgres_server

ENDPOINTS = PROJECT_ROOT / "endpoints.yml"
DOMAIN = Domain.load(PROJECT_ROOT / "domain.yml")


def tracker_store_from_endpoints() -> TrackerStore:
    return TrackerStore.create(read_endpoint_config(str(ENDPOINTS), "tracker_store"), DOMAIN)


def lock_store_from_endpoints() -> LockStore:
    return LockStore.create(read_endpoint_config(str(ENDPOINTS), "lock_store"))


def test_building_the_stores_without_rasas_actions_module_leaves_it_unloaded(tmp_path, monkeypatch):
    # Nothing to patch where no action runs (bot/rasa_patches.py), and loading it costs TensorFlow.
    monkeypatch.delitem(sys.modules, ACTIONS_MODULE, raising=False)
    monkeypatch.setenv("TRACKER_STORE_URL", f"sqlite:///{tmp_path / 'tracker.sqlite3'}")
    monkeypatch.delenv("REDIS_URL", raising=False)
    tracker_store_from_endpoints()
    lock_store_from_endpoints()
    assert ACTIONS_MODULE not in sys.modules


def a_conversation(sender_id: str) -> DialogueStateTracker:
    tracker = DialogueStateTracker(sender_id, DOMAIN.slots)
    tracker.update(UserUttered("stop", {"name": "opt_out", "confidence": 1.0}))
    tracker.update(SlotSet("requested_slot", "opt_out_decision"))
    return tracker


# --- configuration: pure functions ---


def test_tracker_store_url_defaults_to_the_sqlite_file_under_var():
    assert tracker_store_url({}) == DEFAULT_TRACKER_STORE_URL
    assert DEFAULT_TRACKER_STORE_URL.endswith("/var/tracker.sqlite3")
    assert tracker_store_url({"TRACKER_STORE_URL": "postgresql://u@h/db"}) == "postgresql://u@h/db"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://localhost", {"host": "localhost", "port": 6379, "db": 0, "use_ssl": False}),
        ("redis://10.0.0.5:6380/2", {"host": "10.0.0.5", "port": 6380, "db": 2}),
        ("rediss://:s%40cret@cache.internal/1", {"password": "s@cret", "username": None, "use_ssl": True}),
        ("redis://rasa:pw@cache:6379/3", {"username": "rasa", "password": "pw", "db": 3}),
    ],
)
def test_redis_url_becomes_the_lock_store_settings(url, expected):
    settings = redis_lock_settings(url)
    assert {key: settings[key] for key in expected} == expected


@pytest.mark.parametrize("url", ["http://cache:6379", "cache:6379", "redis://cache/db1"])
def test_a_redis_url_that_is_not_one_is_refused(url):
    with pytest.raises(ValueError, match="REDIS_URL"):
        redis_lock_settings(url)


def test_several_sanic_workers_without_redis_are_refused():
    assert isinstance(lock_store_for({}), InMemoryLockStore)
    with pytest.raises(LockError, match="REDIS_URL"):
        lock_store_for({"SANIC_WORKERS": "2"})


# --- endpoints.yml through Rasa's own factories ---


def test_endpoints_yml_finds_the_action_server_on_actions_port(monkeypatch):
    monkeypatch.setenv("ACTIONS_PORT", "5123")
    endpoints = AvailableEndpoints.read_endpoints(str(ENDPOINTS))
    assert endpoints.action.url == "http://127.0.0.1:5123/webhook"


def test_endpoints_yml_keeps_conversations_in_sqlite_by_default(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'tracker.sqlite3'}"
    monkeypatch.setenv("TRACKER_STORE_URL", url)
    store = tracker_store_from_endpoints()
    assert isinstance(store, SQLTrackerStoreFromEnv)
    assert (store.engine.dialect.name, store.engine.url.database) == (
        "sqlite",
        str(tmp_path / "tracker.sqlite3"),
    )
    assert isinstance(lock_store_from_endpoints(), InMemoryLockStore)


async def test_endpoints_yml_keeps_conversations_in_postgresql_when_the_url_says_so(
    postgres_server, monkeypatch
):
    monkeypatch.setenv("TRACKER_STORE_URL", postgres_server.create_database())
    store = tracker_store_from_endpoints()
    assert store.engine.dialect.name == "postgresql"
    await store.save(a_conversation("4915100000900"))
    again = await tracker_store_from_endpoints().retrieve("4915100000900")  # a second replica
    assert again.get_slot("requested_slot") == "opt_out_decision"


def test_endpoints_yml_takes_redis_locks_when_redis_url_is_set(redis_server: RedisServer, monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_server.database_url(1))
    store = lock_store_from_endpoints()
    assert isinstance(store, AtomicRedisLockStore)
    ticket = store.issue_ticket("4915100000901")
    assert store.get_lock("4915100000901").now_serving == ticket


def test_a_missing_database_driver_stops_rasa_instead_of_falling_back_to_memory(monkeypatch):
    # Rasa turns an ImportError in a custom tracker store into an in-memory store and a warning.
    monkeypatch.setitem(sys.modules, "psycopg2", None)  # `import psycopg2` now raises ImportError
    monkeypatch.setenv("TRACKER_STORE_URL", "postgresql://rasa:secret@db.internal/rasa")
    with pytest.raises(TrackerStoreMisconfigured, match="psycopg2") as raised:
        tracker_store_from_endpoints()
    assert "secret" not in str(raised.value)


# --- faults ---


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A server of its own, because the test stops it."""
    with or_skip(postgres_server()) as server:
        yield server


async def test_conversations_are_read_again_after_postgresql_restarts(own_postgres, monkeypatch):
    monkeypatch.setenv("TRACKER_STORE_URL", own_postgres.create_database())
    # As the agent holds it: a failed read there would silently start an empty conversation.
    store = FailSafeTrackerStore(tracker_store_from_endpoints())
    await store.save(a_conversation("4915100000902"))
    assert (await store.retrieve("4915100000902")) is not None  # a pooled connection now exists
    own_postgres.stop()
    own_postgres.start()
    with watch_turn() as watch:
        tracker = await store.retrieve("4915100000902")
    assert watch.errors == []
    assert tracker is not None
    assert tracker.get_slot("requested_slot") == "opt_out_decision"


async def test_a_failed_read_is_seen_by_the_turn_even_though_rasa_swallows_it(postgres_server, monkeypatch):
    url = postgres_server.create_database()
    monkeypatch.setenv("TRACKER_STORE_URL", url)
    store = FailSafeTrackerStore(tracker_store_from_endpoints())
    await store.save(a_conversation("4915100000903"))
    with store._tracker_store.engine.begin() as conn:
        conn.execute(text("ALTER TABLE events RENAME TO events_away"))
    with watch_turn() as watch:
        assert await store.retrieve("4915100000903") is None  # what Rasa's agent would carry on with
    assert len(watch.errors) == 1
    with watch_turn() as healthy:
        await asyncio.sleep(0)
    assert healthy.errors == []


def test_two_replicas_never_get_the_same_ticket(redis_server: RedisServer):
    url = redis_server.database_url(2)
    tickets: list[int] = []

    def replica() -> None:
        store = AtomicRedisLockStore(**redis_lock_settings(url))  # a connection of its own
        for _ in range(50):
            tickets.append(store.issue_ticket("4915100000904", lock_lifetime=600))

    threads = [threading.Thread(target=replica) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(tickets) == list(range(400))


async def test_a_conversation_is_served_by_one_replica_at_a_time(redis_server: RedisServer):
    url = redis_server.database_url(3)
    replicas = [AtomicRedisLockStore(**redis_lock_settings(url)) for _ in range(2)]
    inside: list[int] = []
    overlaps = 0

    async def turn(store: AtomicRedisLockStore, number: int) -> None:
        nonlocal overlaps
        async with store.lock("4915100000905", wait_time_in_seconds=0.01):
            overlaps += bool(inside)
            inside.append(number)
            await asyncio.sleep(0.005)
            inside.remove(number)

    await asyncio.gather(*(turn(replicas[n % 2], n) for n in range(20)))
    assert overlaps == 0
    assert replicas[0].get_lock("4915100000905") is None  # the queue is gone once everyone is served

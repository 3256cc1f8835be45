"""Database guards around consent (issue 9, section 1, "Database guard").

1. A tag's id, customer and name never change: on SQLite, `UPDATE OR REPLACE tags SET id = <the
   OPT_OUT row's id>` on another tag used to delete the opt-out silently (REPLACE fires no delete
   trigger). The other REPLACE paths stay closed too.
2. PostgreSQL in production: migrations run as the owner, the bot as a role with only its grants
   (`python -m bot db grant`); that role can do the bot's work and cannot remove an opt-out, not
   even by disabling or dropping the triggers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError

from bot.broadcast import audience as audiences
from bot.broadcast import deliveries
from bot.broadcast.audience import Audience
from bot.cli import main
from bot.consent import OPT_OUT
from bot.db import dispose_engines, transaction
from bot.grants import BOT_PRIVILEGES, grant_statements
from bot.migrations import upgrade
from bot.schema import consent_events, tags
from bot.store.customers import touch_customer
from bot.store.identifiers import BSUID, PHONE, Identifier
from bot.store.identities import ensure, identify, rotate
from bot.store.marketing_consent import may_send_marketing
from bot.store.opt_out_requests import keep_marketing, request_opt_out
from bot.store.tags import add_tag, record_opt_out
from bot.whatsapp import inbox

AT = datetime(2025, 3, 1, 10, 0, tzinfo=timezone.utc)
ADA, BO = "4915100000001", "4915100000002"


def opt_out_count() -> int:
    with transaction() as conn:
        return conn.execute(select(func.count()).select_from(tags).where(tags.c.name == OPT_OUT)).scalar_one()


def tag_ids() -> dict[str, int]:
    """Ada has VIP and OPT_OUT, Bo has VIP: {"opt_out": id, "other": the id of Bo's VIP}."""
    with transaction() as conn:
        add_tag(conn, ADA, "VIP", "import", None, AT)
        record_opt_out(conn, ADA, "text", "wamid.1", AT)
        add_tag(conn, BO, "VIP", "import", None, AT)
        ids = dict(conn.execute(select(tags.c.name, func.max(tags.c.id)).group_by(tags.c.name)).all())
    return {"opt_out": ids[OPT_OUT], "other": ids["VIP"]}


@pytest.fixture
def tagged(db_url) -> dict[str, int]:
    return tag_ids()


@pytest.fixture
def sqlite_tagged(sqlite_url) -> dict[str, int]:
    return tag_ids()


# --- 1. a tag's identity is fixed -----------------------------------------------------------


def test_sqlite_update_or_replace_cannot_delete_an_opt_out(sqlite_tagged):
    with pytest.raises(IntegrityError, match="never change"), transaction() as conn:
        conn.execute(text("UPDATE OR REPLACE tags SET id = :opt_out WHERE id = :other"), sqlite_tagged)
    assert opt_out_count() == 1
    with transaction() as conn:
        assert not may_send_marketing(conn, ADA)


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE tags SET id = id + 1000 WHERE name = 'VIP'",
        "UPDATE tags SET customer_id = (SELECT MIN(customer_id) FROM tags) WHERE name = 'VIP'",
        "UPDATE tags SET name = 'LEAD' WHERE name = 'VIP'",
    ],
    ids=["id", "customer", "name"],
)
def test_no_tag_changes_id_customer_or_name(tagged, sql):
    with pytest.raises(IntegrityError), transaction() as conn:
        conn.execute(text(sql))
    assert opt_out_count() == 1


def test_a_tags_other_columns_may_still_change(tagged):
    # The guard is on identity, not on every column (0002 already freezes OPT_OUT rows entirely).
    with transaction() as conn:
        changed = conn.execute(text("UPDATE tags SET source = 'text' WHERE name = 'VIP'")).rowcount
    assert changed == 2


def test_sqlite_insert_or_replace_cannot_overwrite_an_opt_out(sqlite_tagged):
    with transaction() as conn:
        conn.execute(
            text(
                "INSERT OR REPLACE INTO tags (id, customer_id, name, added_at, source)"
                " VALUES (:id, (SELECT MAX(customer_id) FROM tags), 'VIP2', :at, 'import')"
            ),
            {"id": sqlite_tagged["opt_out"], "at": AT},
        )
        found = conn.execute(select(tags.c.name).where(tags.c.id == sqlite_tagged["opt_out"])).scalar_one()
    assert found == OPT_OUT


def test_sqlite_update_or_replace_cannot_rewrite_the_consent_history(sqlite_tagged):
    with transaction() as conn:
        touch_customer(conn, BO, None, AT)
        record_opt_out(conn, BO, "text", "wamid.2", AT)
        first, second = conn.execute(select(consent_events.c.id).order_by(consent_events.c.id)).scalars()
    with pytest.raises(IntegrityError), transaction() as conn:
        conn.execute(
            text("UPDATE OR REPLACE consent_events SET id = :first WHERE id = :second"),
            {"first": first, "second": second},
        )
    with transaction() as conn:
        assert conn.execute(select(func.count()).select_from(consent_events)).scalar_one() == 2


# --- 2. PostgreSQL: an owner role migrates, the bot role only has its grants ----------------


def test_the_grants_leave_out_deleting_and_changing_consent():
    assert set(BOT_PRIVILEGES["tags"]) == {"SELECT", "INSERT"}
    assert set(BOT_PRIVILEGES["consent_events"]) == {"SELECT", "INSERT"}
    assert "DELETE" not in BOT_PRIVILEGES["opt_out_requests"]
    assert not any({"TRUNCATE", "REFERENCES", "TRIGGER"} & set(p) for p in BOT_PRIVILEGES.values())
    statements = grant_statements("whatsapp_bot")
    assert statements[0] == 'REVOKE ALL ON ALL TABLES IN SCHEMA public FROM "whatsapp_bot"'
    assert 'GRANT SELECT, INSERT ON tags TO "whatsapp_bot"' in statements
    for bad in ("Bot", "bot; DROP TABLE tags", "", "x" * 64):
        with pytest.raises(ValueError, match="role name"):
            grant_statements(bad)


def _url_as(url: str, role: str) -> str:
    return make_url(url).set(username=role).render_as_string(hide_password=False)


@pytest.fixture
def roles(postgres_server, monkeypatch) -> Iterator[tuple[str, str]]:
    """A fresh database owned by `shop_owner`, migrated by it, and a `shop_bot` role granted by
    `python -m bot db grant` (run as the owner). Yields (owner URL, bot URL)."""
    database = make_url(postgres_server.create_database()).database
    superuser = create_engine(postgres_server.url, future=True, isolation_level="AUTOCOMMIT")
    with superuser.connect() as conn:
        for role in ("shop_owner", "shop_bot"):
            exists = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first()
            if not exists:
                conn.execute(text(f"CREATE ROLE {role} LOGIN"))
        conn.execute(text(f'ALTER DATABASE "{database}" OWNER TO shop_owner'))
    superuser.dispose()
    base = make_url(postgres_server.url).set(database=database).render_as_string(hide_password=False)
    owner_url, bot_url = _url_as(base, "shop_owner"), _url_as(base, "shop_bot")
    monkeypatch.setenv("DATABASE_URL", owner_url)
    upgrade(owner_url)
    assert main(["db", "grant", "--role", "shop_bot"]) == 0
    monkeypatch.setenv("DATABASE_URL", bot_url)
    yield owner_url, bot_url
    for url in (owner_url, bot_url):
        dispose_engines(url)


def test_the_bot_role_does_the_bots_work(roles):
    with transaction() as conn:
        touch_customer(conn, ADA, "Ada", AT)
        request_opt_out(conn, BO, "text", "wamid.b1", AT)
        keep_marketing(conn, BO, "wamid.b2", AT)
        add_tag(conn, BO, "VIP", "import", None, AT)
        audience = Audience(tag="VIP")
        deliveries.create(conn, "b-1", "promo_offer", "en_US", [], audience, 80.0, 1, AT)
        file_load = audiences.load_numbers(conn, audiences.parse_audience_csv(["wa_id", BO]))
        assert file_load.numbers == 1  # a TEMPORARY table: no CREATE on the schema needed
        audiences.drop_numbers(conn)
        assert deliveries.claim(conn, "b-1", BO, AT) is not None
    with transaction() as conn:
        # Linking, merging and a number change: what webhooks make the bot do to identities.
        bsuid, new_bsuid = Identifier(BSUID, "DE.1193386620457"), Identifier(BSUID, "DE.5560021187734")
        identify(conn, [bsuid], "first_contact", AT)
        identify(conn, [Identifier(PHONE, ADA), bsuid], "status_pair", AT)
        rotate(conn, [bsuid], [new_bsuid], AT, "wamid.sys")

    def ada(conn):
        return ensure(conn, ADA)[0]

    assert inbox.claim("wamid.x", ada)[0] is inbox.Claim.NEW
    inbox.release("wamid.x")
    assert inbox.claim("wamid.x", ada)[0] is inbox.Claim.NEW
    inbox.finish("wamid.x")
    with transaction() as conn:
        result = record_opt_out(conn, ADA, "text", "wamid.a2", AT)
        assert result.created and not may_send_marketing(conn, ADA)


def test_rasa_keeps_conversations_as_the_bot_role(roles, monkeypatch):
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import ActionExecuted, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    from bot.rasa_stores import SQLTrackerStoreFromEnv

    _, bot_url = roles
    monkeypatch.setenv("TRACKER_STORE_URL", bot_url)
    store = SQLTrackerStoreFromEnv(domain=Domain.empty())
    tracker = DialogueStateTracker.from_events(
        ADA, [ActionExecuted("action_listen"), UserUttered("hi", {"name": "greet"})]
    )
    asyncio.run(store.save(tracker))
    found = asyncio.run(store.retrieve(ADA))
    store.engine.dispose()
    assert found is not None and found.latest_message.text == "hi"


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM tags",
        "UPDATE tags SET id = id + 1000",
        "UPDATE tags SET customer_id = customer_id",
        "TRUNCATE tags",
        "ALTER TABLE tags DISABLE TRIGGER ALL",
        "ALTER TABLE tags DISABLE TRIGGER tags_opt_out_no_delete",
        "DROP TRIGGER tags_opt_out_no_delete ON tags",
        "DROP TABLE tags CASCADE",
        "DELETE FROM consent_events",
        "UPDATE consent_events SET kind = 'resume'",
        "DELETE FROM opt_out_requests",
        "ALTER TABLE opt_out_requests DISABLE TRIGGER ALL",
        "DELETE FROM customers",
        "CREATE TABLE tags_copy (id integer)",
        "ALTER TABLE tags OWNER TO shop_bot",
    ],
)
def test_the_bot_role_cannot_remove_an_opt_out_or_the_guards(roles, sql):
    with transaction() as conn:
        record_opt_out(conn, ADA, "text", "wamid.1", AT)
        request_opt_out(conn, BO, "text", "wamid.2", AT)
    refused = r"permission denied|must be owner"
    with pytest.raises(DBAPIError, match=refused), transaction() as conn:
        conn.execute(text(sql))
    with transaction() as conn:
        assert not may_send_marketing(conn, ADA) and not may_send_marketing(conn, BO)


def test_grant_refuses_a_role_that_owns_the_tables(roles, monkeypatch, capsys):
    owner_url, _ = roles
    monkeypatch.setenv("DATABASE_URL", owner_url)
    assert main(["db", "grant", "--role", "shop_owner"]) == 1
    assert "owns" in capsys.readouterr().err


def test_grant_refuses_a_superuser(roles, monkeypatch, capsys):
    owner_url, _ = roles
    monkeypatch.setenv("DATABASE_URL", owner_url)
    assert main(["db", "grant", "--role", "postgres"]) == 1
    assert "superuser" in capsys.readouterr().err


# --- 3. erasure (issue 13): only the owner forgets; the bot role only reads the records -------


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO erasures (customer_id, erased_at, operator, customers, identifiers,"
        " conversation_events, message_records) SELECT MIN(id), now(), 'bot', 1, 0, 0, 0 FROM customers",
        "INSERT INTO suppressions (keyed_hash, kind, suppressed_at, erasure_id) VALUES ('x', 'phone', now(), 1)",
        "DELETE FROM suppressions",
        "UPDATE erasures SET operator = 'x'",
        "TRUNCATE suppressions",
    ],
)
def test_the_bot_role_cannot_write_erasures_or_the_suppression_list(roles, sql):
    with transaction() as conn:
        record_opt_out(conn, ADA, "text", "wamid.1", AT)
    with pytest.raises(DBAPIError, match="permission denied"), transaction() as conn:
        conn.execute(text(sql))


def test_the_bot_role_cannot_mark_a_customer_erased(roles):
    with transaction() as conn:
        record_opt_out(conn, ADA, "text", "wamid.1", AT)
    with pytest.raises(IntegrityError, match="erasure record"), transaction() as conn:
        conn.execute(text("UPDATE customers SET erased_at = now()"))


def test_the_owner_forgets_and_the_bot_role_then_suppresses(roles, monkeypatch, capsys):
    owner_url, bot_url = roles
    with transaction() as conn:
        touch_customer(conn, ADA, "Ada", AT)
        record_opt_out(conn, ADA, "text", "wamid.1", AT)
    monkeypatch.setenv("DATABASE_URL", bot_url)
    assert main(["customers", "forget", ADA, "--operator", "Grace"]) != 0  # the bot role may not
    monkeypatch.setenv("DATABASE_URL", owner_url)
    assert main(["customers", "forget", ADA, "--operator", "Grace"]) == 0
    monkeypatch.setenv("DATABASE_URL", bot_url)
    with transaction() as conn:
        touch_customer(conn, ADA, "Ada", AT)  # she writes again: a new customer for the bot role
        assert not may_send_marketing(conn, ADA)

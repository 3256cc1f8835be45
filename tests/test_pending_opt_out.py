"""A customer who asked to stop gets no marketing while they decide (issue 9, section 3).

"stop" opens an opt-out request; until the customer answers, bot.consent allows no marketing: not
the broadcast audience (SQL), not the send-time check, not a playbook. "No" resolves it and
marketing may resume; "yes" writes the OPT_OUT tag and resolves it in the same transaction; no
answer (or an unclear one) leaves it open.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import IntegrityError

import actions.broadcast
from actions.broadcast import ActionSendBroadcast
from actions.marketing import ActionAbandonedCartReminder
from actions.opt_out import ActionCheckOptOut, ActionOptOut
from bot.broadcast import audience as audiences
from bot.broadcast import deliveries
from bot.broadcast.audience import Audience, Selection
from bot.consent import OPT_OUT, marketing_allowed
from bot.dashboard import pages, queries
from bot.db import transaction
from bot.schema import broadcast_deliveries, customer_identities, opt_out_requests
from bot.store.customers import ensure_customer, profile
from bot.store.marketing_consent import may_send_marketing
from bot.store.opt_out_requests import keep_marketing, request_opt_out
from bot.store.tags import record_opt_out
from bot.whatsapp import meta_payloads as meta
from bot.whatsapp.cloud_api import CloudApiClient, RetryPolicy
from tests.rasa_servers import start_bot

AT = datetime(2025, 3, 1, 10, 0, tzinfo=timezone.utc)
ADA, BO, CY, DI = "4915100000001", "4915100000002", "4915100000003", "4915100000004"


# --- the rule -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag_names", "requested", "allowed"),
    [
        ([], False, True),
        (["VIP"], False, True),
        ([], True, False),  # asked to stop, not confirmed: no marketing
        (["VIP"], True, False),
        ([OPT_OUT], False, False),
        ([OPT_OUT], True, False),
    ],
)
def test_an_open_request_forbids_marketing_like_an_opt_out(tag_names, requested, allowed):
    assert marketing_allowed(tag_names, opt_out_requested=requested) is allowed


def requests_of(wa_id: str) -> list[tuple]:
    """(resolution, resolved?) of each of the customer's requests, oldest first."""
    with transaction() as conn:
        customer = profile(conn, wa_id)
        assert customer is not None
        rows = conn.execute(
            text(
                "SELECT r.resolution, r.resolved_at IS NOT NULL FROM opt_out_requests r"
                " JOIN customer_identities i ON i.customer_id = r.customer_id WHERE i.value = :wa_id"
                " ORDER BY r.id"
            ),
            {"wa_id": wa_id},
        ).all()
    return [(resolution, bool(resolved)) for resolution, resolved in rows]


def allowed(wa_id: str) -> bool:
    with transaction() as conn:
        return may_send_marketing(conn, wa_id)


# --- the broadcast audience (SQL) -----------------------------------------------------------


@pytest.fixture
def store(db_url) -> str:
    """Ada never asked; Bo asked and has not answered; Cy opted out; Di asked and said "no"."""
    with transaction() as conn:
        ensure_customer(conn, ADA)
        request_opt_out(conn, BO, "text", "wamid.bo", AT)
        request_opt_out(conn, CY, "text", "wamid.cy", AT)
        record_opt_out(conn, CY, "text", "wamid.cy-yes", AT)
        request_opt_out(conn, DI, "button", "wamid.di", AT)
        assert keep_marketing(conn, DI, "wamid.di-no", AT)
    return db_url


def test_the_audience_leaves_out_a_customer_who_has_not_confirmed(store):
    with transaction() as conn:
        assert audiences.count(conn, Audience()) == Selection(audience=4, allowed=2)
        deliveries.create(conn, "b-1", "promo_offer", "en_US", ["x"], Audience(), 80.0, 4, AT)
        selected = set(
            conn.execute(
                select(customer_identities.c.value).join_from(
                    broadcast_deliveries,
                    customer_identities,
                    customer_identities.c.customer_id == broadcast_deliveries.c.customer_id,
                )
            ).scalars()
        )
        profiles = {wa_id: profile(conn, wa_id) for wa_id in (ADA, BO, CY, DI)}
    assert selected == {ADA, DI}
    # The SQL clause and the profile's pure rule agree.
    assert {wa_id for wa_id, found in profiles.items() if found["marketing_allowed"]} == selected


def test_a_pending_request_is_on_the_profile_until_resolved(store):
    with transaction() as conn:
        bo, cy, di = (profile(conn, wa_id) for wa_id in (BO, CY, DI))
    assert bo["opt_out_request"] == {
        "requested_at": AT.isoformat(),
        "source": "text",
        "message_id": "wamid.bo",
    }
    assert cy["opt_out_request"] is None and di["opt_out_request"] is None
    assert requests_of(CY) == [("opted_out", True)]
    assert requests_of(DI) == [("kept", True)]


# --- the send-time check and the playbook guard ---------------------------------------------


@pytest.fixture
async def client(fake_graph, monkeypatch):
    client = CloudApiClient(fake_graph.api_url, "106540352242922", "token", retry=RetryPolicy(3, 0.01, 0.02))
    monkeypatch.setattr(actions.broadcast, "cloud_api", lambda: client)
    yield client
    await client.close()


def external(wa_id: str, intent: str, **entities: str) -> Tracker:
    latest = {
        "intent": {"name": intent, "confidence": 1.0},
        "entities": [{"entity": name, "value": value} for name, value in entities.items()],
    }
    return Tracker(wa_id, {}, latest, [], False, None, {}, "action_listen")


async def test_the_send_time_check_skips_a_customer_who_asked_after_the_selection(
    sqlite_url, client, fake_graph
):
    with transaction() as conn:
        ensure_customer(conn, ADA)
        deliveries.create(conn, "b-1", "promo_offer", "en_US", ["x"], Audience(), 80.0, 1, AT)
        request_opt_out(conn, ADA, "text", "wamid.1", AT)  # and the form ended without an answer
    tracker = external(ADA, "EXTERNAL_send_broadcast", broadcast_id="b-1")
    events = await ActionSendBroadcast().run(CollectingDispatcher(), tracker, {})
    assert events == [FollowupAction("action_listen")]
    assert fake_graph.state.attempts == 0
    with transaction() as conn:
        assert conn.execute(select(broadcast_deliveries.c.state)).scalar_one() == "skipped_opted_out"


async def test_the_playbook_guard_sends_nothing_while_the_customer_decides(sqlite_url):
    with transaction() as conn:
        request_opt_out(conn, ADA, "template", "wamid.1", AT)
    dispatcher = CollectingDispatcher()
    # No active form: the confirmation ended unanswered, and the request alone keeps marketing off.
    events = await ActionAbandonedCartReminder().run(
        dispatcher, external(ADA, "EXTERNAL_abandoned_cart", cart_items="shoes"), {}
    )
    assert dispatcher.messages == []
    assert events == [SlotSet("marketing_suppressed", "abandoned_cart: customer opted out")]


# --- the conversation: "stop", then yes / no / nothing ----------------------------------------


def conversation(wa_id: str, intent: str, wamid: str, decision: str | None = None) -> Tracker:
    metadata = {"message_id": wamid, "message_kind": "text"}
    latest = {"intent": {"name": intent, "confidence": 0.99}, "metadata": metadata}
    events = [{"event": "user", "parse_data": {"intent": {"name": "opt_out"}}, "metadata": metadata}]
    return Tracker(wa_id, {"opt_out_decision": decision}, latest, events, False, None, {}, "opt_out_form")


async def ask_to_stop(wa_id: str, wamid: str) -> list:
    return await ActionCheckOptOut().run(CollectingDispatcher(), conversation(wa_id, "opt_out", wamid), {})


async def answer(wa_id: str, decision: str, wamid: str) -> list:
    intent = {"confirmed": "affirm", "kept": "deny"}.get(decision, "nlu_fallback")
    tracker = conversation(wa_id, intent, wamid, decision)
    return await ActionOptOut().run(CollectingDispatcher(), tracker, {})


async def test_asking_to_stop_suppresses_marketing_at_once(db_url):
    assert allowed(ADA)
    events = await ask_to_stop(ADA, "wamid.1")
    assert SlotSet("already_opted_out", False) in events
    assert not allowed(ADA)
    assert requests_of(ADA) == [(None, False)]


async def test_no_allows_marketing_again(db_url):
    await ask_to_stop(ADA, "wamid.1")
    assert await answer(ADA, "kept", "wamid.2") == [SlotSet("opt_out_outcome", "kept")]
    assert allowed(ADA)
    assert requests_of(ADA) == [("kept", True)]


async def test_undecided_keeps_the_suppression_until_a_later_answer(db_url):
    await ask_to_stop(ADA, "wamid.1")
    assert await answer(ADA, "unclear", "wamid.2") == [SlotSet("opt_out_outcome", "undecided")]
    assert not allowed(ADA)
    assert requests_of(ADA) == [(None, False)]
    # Days later they write STOP again and answer "no": the same request is resolved.
    await ask_to_stop(ADA, "wamid.3")
    await answer(ADA, "kept", "wamid.4")
    assert allowed(ADA)
    assert requests_of(ADA) == [("kept", True)]


async def test_yes_writes_the_tag_and_resolves_the_request_together(db_url):
    await ask_to_stop(ADA, "wamid.1")
    events = await answer(ADA, "confirmed", "wamid.2")
    assert SlotSet("opt_out_outcome", "opted_out") in events
    assert requests_of(ADA) == [("opted_out", True)]
    with transaction() as conn:
        found = profile(conn, ADA)
        resolved_by = conn.execute(select(opt_out_requests.c.resolution_message_id)).scalar_one()
    assert [t["name"] for t in found["tags"]] == [OPT_OUT] and not found["marketing_allowed"]
    assert resolved_by == "wamid.2"
    # Asking again is answered "already opted out", and opens nothing.
    assert SlotSet("already_opted_out", True) in await ask_to_stop(ADA, "wamid.3")
    assert requests_of(ADA) == [("opted_out", True)]


async def test_an_opt_out_from_elsewhere_resolves_the_request_too(db_url):
    await ask_to_stop(ADA, "wamid.1")
    with transaction() as conn:
        record_opt_out(conn, ADA, "meta_preferences", None, AT)
    assert requests_of(ADA) == [("opted_out", True)]


async def test_asking_again_after_no_suppresses_again(db_url):
    await ask_to_stop(ADA, "wamid.1")
    await answer(ADA, "kept", "wamid.2")
    await ask_to_stop(ADA, "wamid.3")
    assert not allowed(ADA)
    assert requests_of(ADA) == [("kept", True), (None, False)]


async def test_two_requests_while_one_is_open_keep_one_the_first(db_url):
    with transaction() as conn:
        assert request_opt_out(conn, ADA, "template", "wamid.1", AT)
    with transaction() as conn:
        assert request_opt_out(conn, ADA, "text", "wamid.2", AT + timedelta(minutes=5))
        found = profile(conn, ADA)
    assert requests_of(ADA) == [(None, False)]
    assert found["opt_out_request"]["message_id"] == "wamid.1"


async def test_no_without_a_request_changes_nothing(db_url):
    with transaction() as conn:
        assert not keep_marketing(conn, ADA, "wamid.1", AT)  # unknown number
        ensure_customer(conn, ADA)
        assert not keep_marketing(conn, ADA, "wamid.1", AT)
    assert allowed(ADA)


async def test_a_request_that_cannot_be_saved_retries_the_turn(sqlite_url):
    with transaction() as conn:
        conn.execute(text("ALTER TABLE opt_out_requests RENAME TO away"))
    dispatcher = CollectingDispatcher()
    events = await ActionCheckOptOut().run(dispatcher, conversation(ADA, "opt_out", "wamid.1"), {})
    assert events == []
    assert dispatcher.messages[0]["custom"] == {"retry_turn": "could not record the opt-out request"}


# --- the database keeps a request from vanishing ----------------------------------------------


@pytest.fixture
def open_request(db_url) -> int:
    with transaction() as conn:
        request_opt_out(conn, ADA, "text", "wamid.1", AT)
        return conn.execute(select(opt_out_requests.c.id)).scalar_one()


@pytest.mark.parametrize(
    "change",
    [
        delete(opt_out_requests),
        update(opt_out_requests).values(customer_id=opt_out_requests.c.customer_id + 1),
        update(opt_out_requests).values(requested_at=AT + timedelta(days=1)),
        update(opt_out_requests).values(resolution="kept"),  # resolved, but no resolved_at
    ],
    ids=["delete", "move", "backdate", "half-resolved"],
)
def test_the_database_refuses_to_remove_or_rewrite_a_request(open_request, change):
    with pytest.raises(IntegrityError), transaction() as conn:
        conn.execute(change)
    assert not allowed(ADA)


def test_a_resolved_request_cannot_be_reopened_or_changed(open_request):
    with transaction() as conn:
        keep_marketing(conn, ADA, "wamid.2", AT)
    for values in ({"resolved_at": None, "resolution": None}, {"resolution": "opted_out"}):
        with pytest.raises(IntegrityError), transaction() as conn:
            conn.execute(update(opt_out_requests).values(**values))
    assert requests_of(ADA) == [("kept", True)]


def test_sqlite_insert_or_replace_cannot_resolve_a_request_behind_its_back(sqlite_url):
    with transaction() as conn:
        request_opt_out(conn, ADA, "text", "wamid.1", AT)
        request_id, customer_id = conn.execute(
            select(opt_out_requests.c.id, opt_out_requests.c.customer_id)
        ).one()
        conn.execute(
            text(
                "INSERT OR REPLACE INTO opt_out_requests (id, customer_id, requested_at, source,"
                " resolved_at, resolution) VALUES (:id, :customer, :at, 'text', :at, 'kept')"
            ),
            {"id": request_id, "customer": customer_id, "at": AT},
        )
        count = conn.execute(select(func.count()).select_from(opt_out_requests)).scalar_one()
    assert count == 1
    assert requests_of(ADA) == [(None, False)]
    assert not allowed(ADA)


def test_postgresql_refuses_to_truncate_the_requests(postgres_db_url):
    with transaction() as conn:
        request_opt_out(conn, ADA, "text", "wamid.1", AT)
    with pytest.raises(IntegrityError), transaction() as conn:
        conn.execute(text("TRUNCATE opt_out_requests"))
    assert not allowed(ADA)


# --- what the dashboard shows -----------------------------------------------------------------


def test_the_dashboard_shows_asked_to_stop_not_confirmed(store):
    with transaction() as conn:
        page = queries.customer_page(conn)
        bo, di = profile(conn, BO), profile(conn, DI)
    rows = {row.phone: row.opt_out_requested for row in page.rows}
    assert rows == {ADA: False, BO: True, CY: False, DI: False}  # Cy's request ended in OPT_OUT
    listing = str(pages.customers_page(page, "", "", []))
    assert listing.count("asked to stop, not confirmed") == 1
    banner = str(pages.profile_page(bo, lines=None, records=[]))
    assert "Asked to stop, not confirmed" in banner and "no marketing messages until" in banner
    assert "Marketing allowed" in str(pages.profile_page(di, lines=None, records=[]))


# --- end to end: signed webhooks -> real Rasa + action server -> the customer store ------------


@pytest.mark.rasa
def test_end_to_end_unanswered_stays_suppressed_and_a_later_no_resumes(tmp_path):
    bot = start_bot(tmp_path)
    try:
        wa_id = "4915100000077"

        def show() -> dict:
            return json.loads(bot.cli("customers", "show", wa_id).stdout)

        bot.post(meta.text(wa_id, "stop"))
        assert not show()["marketing_allowed"]  # asked, not yet answered
        bot.post(meta.text(wa_id, "banana smoothie recipe"))
        bot.post(meta.text(wa_id, "my cat is sleeping"))  # the second unclear answer ends the form
        found = show()
        assert found["opt_out_request"] is not None and not found["marketing_allowed"]
        assert "hold back marketing" in bot.sent_to(wa_id)[-1]["text"]["body"]

        bot.post(meta.text(wa_id, "stop"))
        bot.post(meta.button_reply(wa_id, "/deny", "No, keep them"))
        found = show()
        assert found["opt_out_request"] is None and found["marketing_allowed"]
        assert not found["tags"]
    finally:
        bot.stop()

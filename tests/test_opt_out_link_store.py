"""The opt-out link follows the customer's family (bot/store/identities.py): a token issued before
a merge opts out the merged customer, and a delivery recorded under any member of the family counts.

Merges happen the way they do in production: one Meta event (a delivery status) carries a phone
number and a BSUID that two customers held (`identify`).
"""

from __future__ import annotations

import time

from bot.broadcast import deliveries
from bot.broadcast.audience import Audience
from bot.broadcast.states import DeliveryState
from bot.db import transaction
from bot.opt_out_link import store
from bot.opt_out_link.token import LinkClaim
from bot.store.identifiers import parse_human
from bot.store.identities import ensure, identify, live
from bot.store.marketing_consent import may_send_marketing
from bot.store.tags import add_tag, record_opt_out
from bot.store.timestamps import now

PHONE = "34612345678"
BSUID = "ES.88123456789012"
AUDIENCE_TAG = "LINK_PROMO"


def claim_for(customer_id: int, broadcast_id: str = "b-1") -> LinkClaim:
    return LinkClaim(customer_id, broadcast_id, int(time.time()) + 3600)


def customer_id(who: str) -> int:
    with transaction() as conn:
        return ensure(conn, who)[0].id


def send_broadcast_to(who: str, broadcast_id: str = "b-1") -> None:
    """A broadcast whose audience (a tag) is `who` alone, sent: a delivery row under them."""
    with transaction() as conn:
        add_tag(conn, who, AUDIENCE_TAG, "import", None, now())
        deliveries.create(
            conn, broadcast_id, "promo_offer", "es", ["20%"], Audience(tag=AUDIENCE_TAG), 80.0, 1, now()
        )
        assert deliveries.claim(conn, broadcast_id, who, now()) is not None
        deliveries.finish(conn, broadcast_id, who, DeliveryState.SENT, now(), wamid=f"wamid.{who}")


def status_pairs_phone_and_bsuid() -> int:
    """A status of our message names both identifiers: their customers become one. The survivor."""
    with transaction() as conn:
        return identify(conn, [parse_human(PHONE), parse_human(BSUID)], "status_pair", at=None).id


def may_send(who: str) -> bool:
    with transaction() as conn:
        return may_send_marketing(conn, who)


def test_a_token_of_a_customer_merged_since_opts_out_the_merged_customer(sqlite_url: str) -> None:
    survivor = customer_id(BSUID)  # older: the merge keeps it
    sent_to = customer_id(PHONE)
    send_broadcast_to(PHONE)
    assert status_pairs_phone_and_bsuid() == survivor

    target = store.link_target(claim_for(sent_to))
    assert target is not None and target.message_id == f"wamid.{PHONE}"
    with transaction() as conn:
        assert target.customer_key == live(conn, survivor).key
    assert store.opt_out(target) is True
    # One person: marketing stops whichever identifier is used.
    assert not may_send(PHONE) and not may_send(BSUID)
    again = store.link_target(claim_for(sent_to))
    assert again is not None and again.opted_out_at is not None


def test_a_delivery_under_a_merged_away_member_counts_for_the_live_customer(sqlite_url: str) -> None:
    # Selected as the phone customer; merged into the BSUID customer before the message went out,
    # so the action signed the token for the live (BSUID) customer: the delivery row names the other.
    survivor = customer_id(BSUID)
    customer_id(PHONE)
    send_broadcast_to(PHONE)
    status_pairs_phone_and_bsuid()

    target = store.link_target(claim_for(survivor))
    assert target is not None and target.message_id == f"wamid.{PHONE}"
    store.opt_out(target)
    assert not may_send(BSUID) and not may_send(PHONE)


def test_an_opt_out_of_another_family_member_shows_as_already_done(sqlite_url: str) -> None:
    customer_id(BSUID)
    sent_to = customer_id(PHONE)
    send_broadcast_to(PHONE)
    with transaction() as conn:
        record_opt_out(conn, BSUID, "text", "wamid.stop", now())
    status_pairs_phone_and_bsuid()
    target = store.link_target(claim_for(sent_to))
    assert target is not None and target.opted_out_at is not None


def test_no_delivery_in_the_family_or_no_such_customer_names_nobody(sqlite_url: str) -> None:
    other = customer_id("34699999999")
    sent_to = customer_id(PHONE)
    send_broadcast_to(PHONE)
    assert store.link_target(claim_for(other)) is None  # genuine token, no delivery of theirs
    assert store.link_target(claim_for(sent_to, "b-unknown")) is None
    assert store.link_target(claim_for(sent_to + 1000)) is None  # no such row at all
    assert may_send(PHONE) and may_send("34699999999")

"""What a webhook tells us besides the conversation: statuses, marketing preferences, identity
changes, sightings, and events we could not attribute to anyone.

Two of them mean the customer already told WhatsApp to stop marketing, so the OPT_OUT tag is
written without asking them again: a `user_preferences` event with value `stop`, and a `failed`
status with error 131050. A `resume` is recorded in the consent history; the tag stays.

Every identifier of one event belongs to one user (Meta's word), so each event also links: a
status of our message carrying the phone number and the BSUID (`status_pair`), a message or
preference carrying both (`webhook_pair`), a system message announcing a change (rotation).
See bot/store/identities.py.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from bot.db import insert_or_ignore, transaction
from bot.masking import mask_message_id
from bot.schema import unidentified_events
from bot.store.customers import record_sighting
from bot.store.identities import Address, Customer, address_of, identify, rotate
from bot.store.tags import record_consent_event, record_opt_out
from bot.store.timestamps import from_unix, now
from bot.whatsapp import inbox
from bot.whatsapp.cloud_api import MARKETING_OPTED_OUT
from bot.whatsapp.inbound import (
    ContactRequestReply,
    DeliveryStatus,
    InboundMessage,
    MarketingPreference,
    PreferenceValue,
    Rotation,
    StatusUpdate,
    Unidentified,
)

logger = logging.getLogger(__name__)


def apply(
    statuses: Sequence[StatusUpdate],
    preferences: Sequence[MarketingPreference],
    rotations: Sequence[Rotation] = (),
) -> None:
    """Record every rotation, status and preference of one webhook (blocking: run it off the
    event loop). Rotations first: later events of the same batch may already use the new ids.
    The channel does the same in three steps, its statuses through the group commit
    (bot/whatsapp/status_batches.py)."""
    apply_rotations(rotations)
    if statuses:
        record_statuses(statuses)
    apply_preferences(preferences)


def apply_rotations(rotations: Sequence[Rotation]) -> None:
    for rotation in rotations:
        with transaction() as conn:
            customer = rotate(
                conn, rotation.old, rotation.new, from_unix(rotation.timestamp), rotation.message_id
            )
        logger.info("identity change (%s) recorded for customer %s", rotation.kind, customer.key)


def record_statuses(statuses: Sequence[StatusUpdate]) -> None:
    """All these statuses in one transaction (one webhook's, or a batch of many webhooks': the
    commits, then the statements, were what the path spent its time on): the delivery statuses
    in one statement, then what each says about its recipient, in order. A status is idempotent
    and forward-only, so their order only matters for links and opt-outs, which are idempotent
    too."""
    with transaction() as conn:
        inbox.record_statuses(conn, statuses)
        for status in statuses:
            _apply_identities(conn, status)


def apply_preferences(preferences: Sequence[MarketingPreference]) -> None:
    for preference in preferences:
        _apply_preference(preference)


def _apply_identities(conn: Connection, status: StatusUpdate) -> None:
    """What a status says about its recipient: a phone number and BSUID that belong together, or
    WhatsApp refusing marketing to them (131050)."""
    recipient = status.recipient
    if status.status is DeliveryStatus.FAILED:
        logger.info(
            "message %s to %s failed with %s",
            mask_message_id(status.message_id),
            recipient.masked if recipient else "<unknown>",
            status.error_code,
        )
    if recipient is None:
        return
    opted_out = status.error_code == MARKETING_OPTED_OUT
    if len(recipient.identifiers) < 2 and not opted_out:
        return  # nothing to link, and a status alone creates no customer
    evidence = "status_pair" if len(recipient.identifiers) > 1 else "first_contact"
    customer = identify(conn, recipient.identifiers, evidence, from_unix(status.timestamp), status.message_id)
    if opted_out:
        record_opt_out(
            conn,
            customer.key,
            source="meta_131050",
            message_id=status.message_id,
            at=from_unix(status.timestamp),
            detail="WhatsApp refused a marketing message: the customer stopped marketing",
            under=recipient.preferred,
        )


def _apply_preference(preference: MarketingPreference) -> None:
    sender = preference.sender
    logger.info("marketing preference %s from %s", preference.value.value, sender.masked)
    at = from_unix(preference.timestamp)
    with transaction() as conn:
        customer = identify(conn, sender.identifiers, sender.evidence, at)
        if preference.value is PreferenceValue.STOP:
            record_opt_out(
                conn,
                customer.key,
                source="meta_preferences",
                message_id=None,
                at=at,
                detail=preference.detail,
                under=sender.preferred,
            )
        elif preference.value in (PreferenceValue.RESUME, PreferenceValue.SIGNUP):
            record_consent_event(
                conn,
                customer.key,
                kind=preference.value.value,
                source="meta_preferences",
                message_id=None,
                detail=preference.detail,
                at=at,
                under=sender.preferred,
            )


@dataclass(frozen=True, slots=True)
class Claimed:
    claim: inbox.Claim
    customer: Customer  # whose conversation the message belongs to
    # Where the turn's replies go (address_of), read in the claim's transaction when the message is
    # ours: one transaction per reply fewer. None: not ours, or no active identity.
    address: Address | None = None


def claim(message: InboundMessage) -> Claimed:
    """Find (or create, or link) the sender and claim the message for processing; if it is ours,
    record that the customer wrote (seen times, name, username) in the same transaction."""

    def who(conn: Connection) -> Customer:
        at = from_unix(message.timestamp)
        sender = message.sender
        customer = identify(conn, sender.identifiers, sender.evidence, at, message.id)
        if isinstance(message, ContactRequestReply) and sender.bsuid is not None:
            # The phone-number request button: WhatsApp vouches that this number is theirs.
            customer = identify(conn, (sender.bsuid, message.shared_phone), "contact_request", at, message.id)
        return customer

    def sighting(conn: Connection, customer: Customer) -> Address | None:
        sender = message.sender
        record_sighting(conn, customer.id, sender.name, sender.username, from_unix(message.timestamp))
        return address_of(conn, customer.id)

    claimed, customer, address = inbox.claim(message.id, who, when_new=sighting)
    return Claimed(claimed, customer, address)


def count_unidentified(events: Sequence[Unidentified]) -> None:
    """One more per reason (`unidentified_events`, shown by the channel's health check)."""
    at = now()
    with transaction() as conn:
        for event in events:
            row = {"reason": event.counter, "count": 0, "last_at": at}
            insert_or_ignore(conn, unidentified_events, row)
            conn.execute(
                update(unidentified_events)
                .where(unidentified_events.c.reason == event.counter)
                .values(count=unidentified_events.c.count + 1, last_at=at)
            )


def unidentified_counts() -> dict[str, int]:
    with transaction() as conn:
        return dict(conn.execute(select(unidentified_events.c.reason, unidentified_events.c.count)).all())

"""What a webhook tells us besides the conversation: statuses, marketing preferences, sightings.

Two of them mean the customer already told WhatsApp to stop marketing, so the OPT_OUT tag is
written without asking them again: a `user_preferences` event with value `stop`, and a `failed`
status with error 131050. A `resume` is recorded in the consent history; the tag stays.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy.engine import Connection

from bot.db import transaction
from bot.masking import mask_message_id, mask_phone
from bot.store.customers import touch_customer
from bot.store.tags import record_consent_event, record_opt_out
from bot.store.timestamps import from_unix
from bot.whatsapp import inbox
from bot.whatsapp.cloud_api import MARKETING_OPTED_OUT
from bot.whatsapp.inbound import (
    DeliveryStatus,
    InboundMessage,
    MarketingPreference,
    PreferenceValue,
    StatusUpdate,
)

logger = logging.getLogger(__name__)


def apply(statuses: Sequence[StatusUpdate], preferences: Sequence[MarketingPreference]) -> None:
    """Record every status and preference of one webhook (blocking: run it off the event loop)."""
    for status in statuses:
        inbox.record_status(status)
        if status.status is DeliveryStatus.FAILED:
            logger.info(
                "message %s to %s failed with %s",
                mask_message_id(status.message_id),
                mask_phone(status.recipient_id),
                status.error_code,
            )
        if status.error_code == MARKETING_OPTED_OUT and status.recipient_id:
            with transaction() as conn:
                record_opt_out(
                    conn,
                    status.recipient_id,
                    source="meta_131050",
                    message_id=status.message_id,
                    at=from_unix(status.timestamp),
                    detail="WhatsApp refused a marketing message: the customer stopped marketing",
                )
    for preference in preferences:
        _apply_preference(preference)


def _apply_preference(preference: MarketingPreference) -> None:
    logger.info("marketing preference %s from %s", preference.value.value, mask_phone(preference.wa_id))
    with transaction() as conn:
        if preference.value is PreferenceValue.STOP:
            record_opt_out(
                conn,
                preference.wa_id,
                source="meta_preferences",
                message_id=None,
                at=from_unix(preference.timestamp),
                detail=preference.detail,
            )
        elif preference.value in (PreferenceValue.RESUME, PreferenceValue.SIGNUP):
            record_consent_event(
                conn,
                preference.wa_id,
                kind=preference.value.value,
                source="meta_preferences",
                message_id=None,
                detail=preference.detail,
                at=from_unix(preference.timestamp),
            )


def claim(message: InboundMessage) -> inbox.Claim:
    """Claim the message for processing and, if it is ours, record that the customer wrote
    (profile created if new, 'last seen' moved forward) in the same transaction."""

    def record_sighting(conn: Connection) -> None:
        touch_customer(conn, message.wa_id, message.name, from_unix(message.timestamp))

    return inbox.claim(message.id, message.wa_id, when_new=record_sighting)

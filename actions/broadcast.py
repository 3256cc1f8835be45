"""`action_send_broadcast`: one broadcast message, sent in the customer's own conversation.

`python -m bot broadcast` triggers the intent EXTERNAL_send_broadcast with the entity broadcast_id
for each customer of the audience (Rasa's trigger_intent API); a rule runs this action. It sends
at most once per customer and broadcast, and only if the customer has not opted out by then:
1. claim the delivery (pending -> sending); no pending delivery for this conversation, no send;
2. ask `bot.consent.may_send_marketing` now: an opt-out, or an unconfirmed request to stop, since
   the selection skips the customer (state skipped_opted_out either way);
3. send the template with the "Stop promotions" payload, and record the outcome.
A customer who is just confirming an opt-out ("stop" -> "are you sure?") is not claimed: the
delivery stays pending for a later run (which sends or skips it once they answered).

A customer cannot start it by typing: the channel strips the leading "/" of typed text, and without
a broadcast id that has a pending delivery for this very conversation the action does nothing.
"""

from __future__ import annotations

import functools
import logging
import time

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from actions.customer import run_store
from actions.marketing import confirming_opt_out
from bot import consent
from bot.broadcast import deliveries
from bot.broadcast.audience import PENDING
from bot.broadcast.deliveries import FAILED, SENT, SKIPPED_OPTED_OUT
from bot.broadcast.runner import BROADCAST_ENTITY
from bot.broadcast.template import load_buttons, template_message
from bot.masking import mask_identifier
from bot.opt_out_link.settings import LinkSettings
from bot.store.identities import Address, address_of, resolve
from bot.store.tags import record_opt_out
from bot.store.timestamps import now
from bot.whatsapp.cloud_api import (
    MARKETING_OPTED_OUT,
    RETRYABLE_CODES,
    CloudApiClient,
    SendRejected,
    SendUnavailable,
)
from bot.whatsapp.config import WhatsAppConfig
from bot.whatsapp.outbound import addressed

logger = logging.getLogger(__name__)


@functools.lru_cache(maxsize=1)
def cloud_api() -> CloudApiClient | None:
    """One client (and connection pool) per action server, from the Rasa server's WHATSAPP_* env."""
    config = WhatsAppConfig.load({})
    if not config.can_send:
        return None
    return CloudApiClient(config.api_url, config.phone_number_id, config.access_token)


@functools.lru_cache(maxsize=1)
def link_settings() -> LinkSettings:
    """Read once per process: the secret must not change under a running broadcast."""
    return LinkSettings.from_env()


class ActionSendBroadcast(Action):
    def name(self) -> str:
        return "action_send_broadcast"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        if confirming_opt_out(tracker):
            # Not claimed: it stays pending, and a later run (--id) sends or skips it once the
            # customer has answered. A rule then asks the open question again.
            logger.info("broadcast deferred: %s is confirming an opt-out", mask_identifier(tracker.sender_id))
            return []
        # After a broadcast the bot waits for the customer, as the rule says; saying it here as
        # well spares Rasa a policy prediction per message (a seventh of its CPU per broadcast).
        return [*await self._run(tracker), FollowupAction("action_listen")]

    async def _run(self, tracker: Tracker) -> list[EventType]:
        broadcast_id = next(tracker.get_latest_entity_values(BROADCAST_ENTITY), None)
        if not broadcast_id:
            logger.info("action_send_broadcast without a broadcast id: nothing to do")
            return []
        # The conversation is the customer key; the address (phone number or BSUID) is looked up.
        customer = tracker.sender_id
        client = cloud_api()
        if client is None:
            # Checked before claiming, so that the delivery stays pending for a later run.
            logger.error("cannot send broadcasts: set WHATSAPP_ACCESS_TOKEN and WHATSAPP_PHONE_NUMBER_ID")
            return []
        try:
            return await self._send(client, str(broadcast_id), customer)
        except SQLAlchemyError:
            # The delivery stays pending (the claim rolled back) or sending (reported as interrupted).
            logger.exception(
                "customer store unavailable during broadcast %s to %s",
                broadcast_id,
                mask_identifier(customer),
            )
            return []

    async def _send(self, client: CloudApiClient, broadcast_id: str, wa_id: str) -> list[EventType]:
        allowed = await run_store(_claim_if_allowed, broadcast_id, wa_id)
        if allowed is None:
            return []
        claimed, address, customer_id = allowed
        buttons = load_buttons(claimed.template)
        # The opt-out link's token names the customer and this broadcast (bot/opt_out_link).
        link_token = None
        if buttons.opt_out_link is not None:
            link_token = link_settings().token(customer_id, broadcast_id, int(time.time()))
        template = template_message(
            "", claimed.template, claimed.language, claimed.params, broadcast_id, buttons, link_token
        )
        body = addressed(template, address)
        try:
            sent = await client.send(body)
        except SendRejected as error:
            await run_store(_refused, broadcast_id, wa_id, error.code, error.title)
            return []
        except SendUnavailable as error:
            # Throttled to the end: WhatsApp did not take it, so it may be tried again later.
            # Anything else (server errors, no answer): it may have gone out; never send it twice.
            state = PENDING if error.code in RETRYABLE_CODES or error.http_status == 429 else FAILED
            await run_store(
                deliveries.finish, broadcast_id, wa_id, state, now(), None, error.code, error.title
            )
            return []
        await run_store(deliveries.finish, broadcast_id, wa_id, SENT, now(), sent.message_id)
        return [SlotSet("last_broadcast", claimed.template)]


def _claim_if_allowed(
    conn: Connection, broadcast_id: str, wa_id: str
) -> tuple[deliveries.Claimed, Address, int] | None:
    """Claim the delivery and ask for consent at this moment, in one transaction; None: do not send.

    `wa_id` is the conversation: the customer key (any identifier of theirs does too)."""
    claimed = deliveries.claim(conn, broadcast_id, wa_id, now())
    if claimed is None:
        logger.info("broadcast %s: nothing pending for %s", broadcast_id, mask_identifier(wa_id))
        return None
    if not consent.may_send_marketing(conn, wa_id):
        deliveries.finish(conn, broadcast_id, wa_id, SKIPPED_OPTED_OUT, now())
        logger.info("broadcast %s: %s opted out since the selection", broadcast_id, mask_identifier(wa_id))
        return None
    customer = resolve(conn, wa_id)
    address = None if customer is None else address_of(conn, customer.id)
    if address is None:
        deliveries.finish(conn, broadcast_id, wa_id, FAILED, now(), None, None, "no WhatsApp address")
        logger.warning("broadcast %s: %s has no WhatsApp address", broadcast_id, mask_identifier(wa_id))
        return None
    return claimed, address, customer.id


def _refused(conn: Connection, broadcast_id: str, wa_id: str, code: int | None, title: str) -> bool:
    """WhatsApp will not deliver it, and retrying would not help: failed, with the reason.

    131050 means the customer stopped marketing messages in WhatsApp itself: that is an opt-out.
    """
    if code == MARKETING_OPTED_OUT:
        record_opt_out(
            conn,
            wa_id,
            source="meta_131050",
            message_id=None,
            at=now(),
            detail=f"WhatsApp refused broadcast {broadcast_id}: the customer stopped marketing messages",
        )
    return deliveries.finish(conn, broadcast_id, wa_id, FAILED, now(), None, code, title)

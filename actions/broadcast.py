"""`action_send_broadcast`: one broadcast message, sent in the customer's own conversation.

Bulk broadcasts go out through the workers (`python -m bot broadcast`, bot/broadcast/worker.py),
without a Rasa turn per customer. This action is the single send: Rasa's trigger_intent with the
intent EXTERNAL_send_broadcast and the entity broadcast_id, for one customer whose delivery is
still pending; a rule runs it. It takes the same steps as the workers (bot/broadcast/sending.py),
at most once per customer and broadcast, and only if the customer has not opted out by then:
1. claim the delivery (pending -> sending); no pending delivery for this conversation, no send;
2. ask `bot.consent` now: an opt-out, or an unconfirmed request to stop, since the selection skips
   the customer (state skipped_opted_out either way);
3. send the template with the "Stop promotions" payload (and the opt-out link), record the outcome.
A customer who is just confirming an opt-out ("stop" -> "are you sure?") is not claimed: the
delivery stays pending for a later run (which sends or skips it once they answered).

A customer cannot start it by typing: the channel strips the leading "/" of typed text, and without
a broadcast id that has a pending delivery for this very conversation the action does nothing.
"""

from __future__ import annotations

import functools
import logging

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from actions.customer import run_store
from actions.marketing import confirming_opt_out
from bot.broadcast import deliveries, sending
from bot.broadcast.sending import Campaign, Ready
from bot.broadcast.states import DeliveryState
from bot.contract import ActionName, Entity, Slot
from bot.masking import mask_identifier
from bot.opt_out_link.settings import LinkSettings
from bot.store.identities import resolve
from bot.store.timestamps import now
from bot.whatsapp.cloud_api import CloudApiClient
from bot.whatsapp.config import WhatsAppConfig

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
        return ActionName.SEND_BROADCAST

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
        return [*await self._run(tracker), FollowupAction(ActionName.LISTEN)]

    async def _run(self, tracker: Tracker) -> list[EventType]:
        broadcast_id = next(tracker.get_latest_entity_values(Entity.BROADCAST_ID), None)
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

    async def _send(self, client: CloudApiClient, broadcast_id: str, who: str) -> list[EventType]:
        # The same steps as the broadcast workers (bot/broadcast/sending.py), for one customer.
        ready = await run_store(_claim_and_prepare, broadcast_id, who, link_settings())
        if ready is None:
            return []
        item, campaign = ready
        finished = await sending.send(client, item)
        await run_store(sending.record, broadcast_id, [(item, finished)], now())
        if finished.state != DeliveryState.SENT:
            return []
        return [SlotSet(Slot.LAST_BROADCAST, campaign.broadcast.template)]


def _claim_and_prepare(
    conn: Connection, broadcast_id: str, who: str, link: LinkSettings
) -> tuple[Ready, Campaign] | None:
    """Claim the delivery and ask for consent at this moment, in one transaction; None: do not send.

    `who` is the conversation: the customer key (any identifier of theirs does too)."""
    if deliveries.claim(conn, broadcast_id, who, now()) is None:
        logger.info("broadcast %s: nothing pending for %s", broadcast_id, mask_identifier(who))
        return None
    broadcast = deliveries.get(conn, broadcast_id)
    customer = resolve(conn, who)
    if broadcast is None or customer is None:
        return None
    campaign = Campaign.of(broadcast, link)
    claimed = deliveries.sending_of(conn, broadcast_id, who)
    ready = sending.prepare(conn, campaign, claimed, now())
    return (ready[0], campaign) if ready else None

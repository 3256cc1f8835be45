"""Marketing playbooks: messages the business starts, which an opted-out customer never gets.

Every marketing action is a `MarketingAction`: its `run` asks `bot.store.marketing_consent.may_send_marketing`
first and, for an opted-out customer (or one who asked to stop and has not confirmed, whether or not
the confirmation is still running, or when consent cannot be checked), sends nothing and sets `marketing_suppressed` so the conversation shows why.
Subclasses only say what to send. Each playbook is switched on or off in playbooks.yml
(`actions/playbooks.py`); a switched-off one sends nothing either.

Service messages (answers to the customer's own questions, the opt-out confirmation) are not
marketing and do not go through here.

A playbook is started from outside, like a broadcast: `POST /conversations/<conversation>/trigger_intent`
with an EXTERNAL_ intent (data/rules.yml maps it to the action); the conversation is the customer
key, which `bot.store.identities.conversation_id` finds from any identifier of the customer.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod

import yaml
from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict
from sqlalchemy.exc import SQLAlchemyError

from actions import playbooks
from actions.customer import run_store
from bot.contract import ActionName, Entity, Form, Response, Slot
from bot.masking import mask_identifier
from bot.store.marketing_consent import may_send_marketing

logger = logging.getLogger(__name__)


def confirming_opt_out(tracker: Tracker) -> bool:
    """The customer asked to stop and has not answered "are you sure?" yet: no marketing now."""
    return tracker.active_loop_name == Form.OPT_OUT


class MarketingAction(Action, ABC):
    """The one consent guard of every marketing playbook."""

    playbook: str  # its name in playbooks.yml and in `marketing_suppressed`

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        wa_id = tracker.sender_id
        try:
            on = playbooks.switched_on(self.playbook, playbook_names())
        except (OSError, ValueError, yaml.YAMLError):
            logger.exception("%s: cannot read the playbook switches; not sent", self.playbook)
            return [SlotSet(Slot.MARKETING_SUPPRESSED, f"{self.playbook}: playbook switches unreadable")]
        if not on:
            return [SlotSet(Slot.MARKETING_SUPPRESSED, f"{self.playbook}: switched off in playbooks.yml")]
        if confirming_opt_out(tracker):
            logger.info("%s: %s is confirming an opt-out; not sent", self.playbook, mask_identifier(wa_id))
            return [SlotSet(Slot.MARKETING_SUPPRESSED, f"{self.playbook}: customer is confirming an opt-out")]
        try:
            allowed = await run_store(may_send_marketing, wa_id)
        except (SQLAlchemyError, ValueError):
            # Fail closed: marketing that cannot be checked is not sent.
            logger.exception(
                "%s: cannot check consent of %s; not sent", self.playbook, mask_identifier(wa_id)
            )
            return [SlotSet(Slot.MARKETING_SUPPRESSED, f"{self.playbook}: consent could not be checked")]
        if not allowed:
            logger.info("%s: %s opted out; not sent", self.playbook, mask_identifier(wa_id))
            return [SlotSet(Slot.MARKETING_SUPPRESSED, f"{self.playbook}: customer opted out")]
        return await self.send(dispatcher, tracker, domain)

    @abstractmethod
    async def send(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        """Only ever called for a customer marketing may reach."""


def playbook_names() -> set[str]:
    """Every marketing playbook: the names playbooks.yml may switch."""
    return {action.playbook for action in MarketingAction.__subclasses__()}


class ActionAbandonedCartReminder(MarketingAction):
    """EXTERNAL_abandoned_cart (entity cart_items, optional) -> utter_abandoned_cart."""

    playbook = "abandoned_cart"

    def name(self) -> str:
        return ActionName.ABANDONED_CART_REMINDER

    async def send(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        items = next(tracker.get_latest_entity_values(Entity.CART_ITEMS), None)
        # The wording lives in domain.yml; this only fills {cart_items} when the shop sent none.
        dispatcher.utter_message(response=Response.ABANDONED_CART, cart_items=items or "some items")
        return []

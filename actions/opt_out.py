"""The opt-out conversation: check the customer's status, run the confirmation form, write the tag.

The flow itself (which response follows what) lives in data/rules.yml; these actions only read and
write the customer store and fill the slots the rules branch on.
"""

from __future__ import annotations

import logging
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict
from sqlalchemy.exc import SQLAlchemyError

from actions.customer import message_id_of, optout_source, run_store
from bot.masking import mask_phone
from bot.store.opt_out_requests import keep_marketing, request_opt_out
from bot.store.tags import record_opt_out
from bot.store.timestamps import now
from bot.turns import retry_turn

logger = logging.getLogger(__name__)

DECISION_BY_INTENT = {"affirm": "confirmed", "opt_out": "confirmed", "deny": "kept"}
# Questions are answered by rules (data/rules.yml) and the confirmation is asked again; they
# do not count as unclear answers.
QUESTION_INTENTS = frozenset({"help", "bot_challenge", "order_help", "ask_offers"})
MAX_UNCLEAR_ANSWERS = 2


class ActionCheckOptOut(Action):
    """Before asking "are you sure?": a customer who already opted out is told so instead.

    Anyone else now has an open opt-out request (bot/store/opt_out_requests.py): from this moment
    until they answer, no marketing reaches them, and if they never answer it stays that way.
    """

    def name(self) -> str:
        return "action_check_opt_out"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        metadata = tracker.latest_message.get("metadata") or {}
        try:
            requested = await run_store(
                request_opt_out,
                tracker.sender_id,
                source=optout_source(tracker.events),
                message_id=message_id_of(tracker.latest_message),
                at=now(),
                name=metadata.get("name"),
            )
        except SQLAlchemyError:
            logger.exception("could not record the opt-out request of %s", mask_phone(tracker.sender_id))
            dispatcher.utter_message(json_message=retry_turn("could not record the opt-out request"))
            return []
        # A new confirmation starts from scratch, whatever an earlier one left in the slots.
        return [
            SlotSet("already_opted_out", not requested),
            SlotSet("opt_out_decision", None),
            SlotSet("opt_out_unclear_answers", 0),
        ]


def confirmation_answer(intent: str | None, unclear_so_far: float) -> dict[str, Any]:
    """Pure: the slots an answer to "Do you want to stop...?" fills.

    An empty result means "not an answer" (a question): the form rejects the turn so that a rule
    can answer it, then asks again.
    """
    if intent in DECISION_BY_INTENT:
        return {"opt_out_decision": DECISION_BY_INTENT[intent]}
    if intent in QUESTION_INTENTS or (intent or "").startswith("EXTERNAL_"):
        # Questions, and events from outside (a broadcast, a playbook), are not answers.
        return {}
    unclear = int(unclear_so_far) + 1
    if unclear >= MAX_UNCLEAR_ANSWERS:
        return {"opt_out_unclear_answers": unclear, "opt_out_decision": "unclear"}
    return {"opt_out_unclear_answers": unclear}


class ValidateOptOutForm(Action):
    """Reads the customer's answer to the confirmation form (`validate_opt_out_form`).

    The answer is taken from the intent here rather than by `from_intent` slot mappings, because
    Rasa skips those mappings on the turn after a form was interrupted by a question; and the
    count of unclear answers must be returned too, which FormValidationAction would filter out.
    """

    def name(self) -> str:
        return "validate_opt_out_form"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        if tracker.get_slot("requested_slot") != "opt_out_decision":
            return []  # the form is only starting: the "stop" itself is not an answer
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        answer = confirmation_answer(intent, tracker.get_slot("opt_out_unclear_answers") or 0)
        return [SlotSet(slot, value) for slot, value in answer.items()]


class ActionOptOut(Action):
    """Submit the confirmation form: write the irremovable OPT_OUT tag if the customer confirmed,
    resolve their opt-out request if they want to keep the messages, leave it open otherwise.

    Sets `opt_out_outcome` (opted_out | kept | undecided | failed); data/rules.yml says what
    the bot answers for each.
    """

    def name(self) -> str:
        return "action_opt_out"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        decision = tracker.get_slot("opt_out_decision")
        if decision == "kept":
            return await self._keep(dispatcher, tracker)
        if decision != "confirmed":
            # No answer: the open request stays, and with it the suppression of marketing.
            return [SlotSet("opt_out_outcome", "undecided")]
        wa_id = tracker.sender_id
        metadata = tracker.latest_message.get("metadata") or {}
        try:
            result = await run_store(
                record_opt_out,
                wa_id,
                source=optout_source(tracker.events),
                message_id=message_id_of(tracker.latest_message),
                at=now(),
                name=metadata.get("name"),
            )
        except SQLAlchemyError:
            logger.exception("could not save the opt-out of %s", mask_phone(wa_id))
            dispatcher.utter_message(json_message=retry_turn("could not save the opt-out"))
            return [SlotSet("opt_out_outcome", "failed")]
        logger.info(
            "%s opted out (%s, %s)",
            mask_phone(wa_id),
            result.source,
            "new" if result.created else "already recorded",
        )
        return [SlotSet("already_opted_out", True), SlotSet("opt_out_outcome", "opted_out")]

    async def _keep(self, dispatcher: CollectingDispatcher, tracker: Tracker) -> list[EventType]:
        """The customer answered "no": resolve their request, so that marketing may resume."""
        wa_id = tracker.sender_id
        try:
            await run_store(keep_marketing, wa_id, message_id_of(tracker.latest_message), now())
        except SQLAlchemyError:
            # Marketing stays suppressed (the safe side); WhatsApp redelivers the "no".
            logger.exception("could not save that %s keeps marketing", mask_phone(wa_id))
            dispatcher.utter_message(json_message=retry_turn("could not save the answer"))
            return [SlotSet("opt_out_outcome", "failed")]
        return [SlotSet("opt_out_outcome", "kept")]

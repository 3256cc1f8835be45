"""The opt-out conversation: check the customer's status, run the confirmation form, write the tag.

The flow itself (which response follows what) lives in data/rules.yml; these actions only read and
write the customer store and fill the slots the rules branch on.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from actions.customer import identifier_of, message_id_of, optout_source, run_store
from actions.evidence import opt_out_evidence
from actions.opt_out_mode import MODE, opts_out_at_once
from bot.consent import KEPT_MARKETING
from bot.contract import ActionName, Decision, Intent, Outcome, Slot, retry_turn
from bot.masking import mask_identifier
from bot.store.evidence import ConsentEvidence
from bot.store.identifiers import Identifier
from bot.store.opt_out_requests import keep_marketing, request_opt_out
from bot.store.tags import record_consent_event, record_opt_out
from bot.store.timestamps import now

logger = logging.getLogger(__name__)

# The answer to "Do you want to stop receiving marketing messages?" is a three-way decision.
# A wrong "yes" writes a tag that can never be removed, so "yes" must be sure: an affirmation or
# an opt-out request predicted with at least YES_CONFIDENCE (the "Yes" button's `/affirm` payload
# is parsed with confidence 1.0). Below it the answer is unclear and the question is asked again.
# 0.8 is chosen on the DEV sets (bench/data/*_dev.yml): no "no"/"unclear" answer was read as
# affirm/opt_out above it, while typed "yes" in every language is far above it.
YES_CONFIDENCE = 0.8
YES_INTENTS = frozenset({Intent.AFFIRM, Intent.OPT_OUT})
# A "no" is always safe to take (nothing is written, marketing may continue as before): a denial
# or anything saying they want to keep receiving ("keep them", "I want more offers") is "no",
# whatever its confidence above the FallbackClassifier's threshold (below it, NLU answers
# nlu_fallback, which is unclear).
NO_INTENTS = frozenset({Intent.DENY, Intent.WANT_MARKETING})
# ...and a "yes" is not sure while the model gives "no" any real weight: a yes also needs the
# intents of NO_INTENTS together below NO_DOUBT in the ranking. "I want more offers" can score
# 0.88 as opt_out when the phrasing is new to the model (5-fold cross-validation), and then
# "no" is usually the runner-up. Decided before the frozen held-out set was evaluated; the
# cost is an extra question for a customer who meant yes.
NO_DOUBT = 0.1
# ...and an answer predicted with less than NO_MAJORITY while the "no" intents together hold at least
# NO_MAJORITY of the ranking is a "no". The NLU pipeline may put opt_out on top of such a ranking only because it
# might be an opt-out (nlu_components/opt_out_in_doubt.py: "when in doubt, ask"); as an answer to
# the confirmation, "I want more offers" is still a no (nothing is written either way).
NO_MAJORITY = 0.5
# A typed yes must also be plain: every word of it on the list in actions/yes_words.yml, and no
# question ("what?", "hein?"), which the customer typed and nobody has to guess. The model is
# over-confident on answers unlike its training data, and a "no" it reads as a sure yes would be
# permanent; an answer that is not plain is unclear, and asked again.
QUESTION_MARKS = ("?", "？", "؟")
YES_WORDS_FILE = Path(__file__).with_name("yes_words.yml")
# Questions and complaints are answered by rules (data/rules.yml) and the confirmation is asked
# again; they do not count as unclear answers.
QUESTION_INTENTS = frozenset(
    {Intent.HELP, Intent.BOT_CHALLENGE, Intent.ORDER_HELP, Intent.ASK_OFFERS, Intent.COMPLAINT}
)
MAX_UNCLEAR_ANSWERS = 2


class ActionCheckOptOut(Action):
    """Before asking "are you sure?": a customer who already opted out is told so instead.

    Anyone else now has an open opt-out request (bot/store/opt_out_requests.py): from this moment
    until they answer, no marketing reaches them, and if they never answer it stays that way.
    """

    def name(self) -> str:
        return ActionName.CHECK_OPT_OUT

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
            logger.exception("could not record the opt-out request of %s", mask_identifier(tracker.sender_id))
            dispatcher.utter_message(json_message=retry_turn("could not record the opt-out request"))
            return []
        # A new confirmation starts from scratch, whatever an earlier one left in the slots; in
        # immediate mode a keyword or a stop button is itself the answer (actions/opt_out_mode.py).
        at_once = requested and opts_out_at_once(MODE, typed_text(tracker.latest_message.get("text") or ""))
        return [
            SlotSet(Slot.ALREADY_OPTED_OUT, not requested),
            SlotSet(Slot.OPT_OUT_AT_ONCE, at_once),
            SlotSet(Slot.OPT_OUT_DECISION, Decision.CONFIRMED if at_once else None),
            SlotSet(Slot.OPT_OUT_UNCLEAR_ANSWERS, 0),
        ]


def confirmation_answer(
    intent: str | None,
    unclear_so_far: float,
    confidence: float = 1.0,
    doubt: float = 0.0,
    typed: str | None = None,
) -> dict[str, Any]:
    """Pure: the slots an answer to "Do you want to stop...?" fills.

    - yes (`opt_out_decision: confirmed`): affirm or opt_out with confidence >= YES_CONFIDENCE
      and less than NO_DOUBT of the ranking on a "no" intent (`doubt`, see `no_weight`); a typed
      answer (`typed`, None for a button payload) must also be `plainly_yes`;
    - no (`kept`): deny or want_marketing, at any confidence, or any intent predicted with less
      than NO_MAJORITY while the "no" intents hold at least NO_MAJORITY of the ranking;
    - not an answer (empty result): a question, a complaint or an event from outside; the form
      rejects the turn so that a rule can answer it, then asks again;
    - unclear (anything else, including nlu_fallback and a low-confidence yes): counted in
      `opt_out_unclear_answers`; the question is asked again, and the MAX_UNCLEAR_ANSWERS-th
      unclear answer ends the form with `opt_out_decision: unclear` (nothing is written).
    """
    sure = intent in YES_INTENTS and confidence >= YES_CONFIDENCE and doubt < NO_DOUBT
    if sure and (typed is None or plainly_yes(typed)):
        return {Slot.OPT_OUT_DECISION: Decision.CONFIRMED}
    if intent in NO_INTENTS or (confidence < NO_MAJORITY <= doubt):
        return {Slot.OPT_OUT_DECISION: Decision.KEPT}
    if intent in QUESTION_INTENTS or (intent or "").startswith("EXTERNAL_"):
        # Questions, and events from outside (a broadcast, a playbook), are not answers.
        return {}
    unclear = int(unclear_so_far) + 1
    if unclear >= MAX_UNCLEAR_ANSWERS:
        return {Slot.OPT_OUT_UNCLEAR_ANSWERS: unclear, Slot.OPT_OUT_DECISION: Decision.UNCLEAR}
    return {Slot.OPT_OUT_UNCLEAR_ANSWERS: unclear}


def decision_of(answer: dict[str, Any]) -> str:
    """Pure: "yes", "no" or "unclear" for the slots confirmation_answer returned.

    A question (empty result) is not a yes: it is answered and the confirmation asked again.
    """
    return {Decision.CONFIRMED: "yes", Decision.KEPT: "no"}.get(answer.get(Slot.OPT_OUT_DECISION), "unclear")


class ValidateOptOutForm(Action):
    """Reads the customer's answer to the confirmation form (`validate_opt_out_form`).

    The answer is taken from the intent here rather than by `from_intent` slot mappings, because
    Rasa skips those mappings on the turn after a form was interrupted by a question; and the
    count of unclear answers must be returned too, which FormValidationAction would filter out.
    """

    def name(self) -> str:
        return ActionName.VALIDATE_OPT_OUT_FORM

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        if tracker.get_slot("requested_slot") != Slot.OPT_OUT_DECISION:
            return []  # the form is only starting: the "stop" itself is not an answer
        parsed = tracker.latest_message.get("intent") or {}
        answer = confirmation_answer(
            parsed.get("name"),
            tracker.get_slot(Slot.OPT_OUT_UNCLEAR_ANSWERS) or 0,
            _confidence(parsed),
            no_weight(tracker.latest_message.get("intent_ranking") or []),
            typed_text(tracker.latest_message.get("text") or ""),
        )
        return [SlotSet(slot, value) for slot, value in answer.items()]


def typed_text(text: str) -> str | None:
    """The customer's typed words, or None for a payload of the bot's own buttons: the channel
    lets nothing typed start with "/" (bot/whatsapp/rasa_input.py), so a leading "/" is a tap."""
    return None if text.startswith("/") else text


def plainly_yes(text: str, words: frozenset[str] | None = None) -> bool:
    """Pure: is every word (and symbol) of the text a plain yes or stop word, and no question?"""
    if text.rstrip().endswith(QUESTION_MARKS):
        return False
    tokens = answer_tokens(text)
    allowed = yes_words() if words is None else words
    return bool(tokens) and all(token in allowed or _unstretched(token) in allowed for token in tokens)


def _unstretched(token: str) -> str:
    """A word with each run of a repeated letter cut to one ("siii" -> "si", "yesss" -> "yes",
    "stoppp" -> "stop"): customers stretch a yes. A stretched "no" ("nooo" -> "no") stays off the
    list, since no negation is on it; nor does a run of one letter ("kkkk", Portuguese laughter,
    is not "k" for ok)."""
    short = re.sub(r"(\w)\1+", r"\1", token)
    return short if len(short) >= 2 else token


def answer_tokens(text: str) -> list[str]:
    """Lower-case words without accents or apostrophes ("D'accord!" -> daccord), and symbols
    (emoji) one by one; punctuation, variation selectors and skin tones are dropped."""
    plain = "".join(c for c in unicodedata.normalize("NFKD", text.casefold()) if not unicodedata.combining(c))
    plain = re.sub(r"['’`´]", "", plain)
    tokens: list[str] = []
    for match in re.finditer(r"\w+|\S", plain):
        token = match.group()
        if token[0].isalnum() or token[0] == "_" or unicodedata.category(token) in {"So", "Sm", "Sc"}:
            tokens.append(token)
    return tokens


@cache
def yes_words() -> frozenset[str]:
    """Every language's list in actions/yes_words.yml, in one set (an answer may mix languages)."""
    document = yaml.safe_load(YES_WORDS_FILE.read_text(encoding="utf-8")) or {}
    return frozenset(token for words in document.values() for token in answer_tokens(str(words)))


def no_weight(intent_ranking: list[dict[str, Any]]) -> float:
    """Pure: how much of the ranking says "no" (the confidences of NO_INTENTS, summed).

    A parse without a ranking (a button payload such as `/affirm`) has no doubt."""
    return sum(_confidence(entry) for entry in intent_ranking if entry.get("name") in NO_INTENTS)


def _confidence(parsed_intent: dict[str, Any]) -> float:
    """The intent's confidence; a parse without one (none is sent by Rasa) counts as unsure."""
    try:
        return float(parsed_intent.get("confidence"))
    except (TypeError, ValueError):
        return 0.0


class ActionOptOut(Action):
    """Submit the confirmation form: write the irremovable OPT_OUT tag if the customer confirmed,
    resolve their opt-out request if they want to keep the messages, leave it open otherwise.

    Sets `opt_out_outcome` (opted_out | kept | undecided | failed); data/rules.yml says what
    the bot answers for each.
    """

    def name(self) -> str:
        return ActionName.OPT_OUT

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        decision = tracker.get_slot(Slot.OPT_OUT_DECISION)
        if decision == Decision.KEPT:
            return await self._keep(dispatcher, tracker)
        if decision != Decision.CONFIRMED:
            # No answer: the open request stays, and with it the suppression of marketing.
            return [SlotSet(Slot.OPT_OUT_OUTCOME, Outcome.UNDECIDED)]
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
                under=identifier_of(tracker.latest_message),
                evidence=opt_out_evidence(
                    tracker.events, tracker.latest_message, tracker.get_slot(Slot.LANGUAGE)
                ),
            )
        except SQLAlchemyError:
            logger.exception("could not save the opt-out of %s", mask_identifier(wa_id))
            dispatcher.utter_message(json_message=retry_turn("could not save the opt-out"))
            return [SlotSet(Slot.OPT_OUT_OUTCOME, Outcome.FAILED)]
        logger.info(
            "%s opted out (%s, %s)",
            mask_identifier(wa_id),
            result.source,
            "new" if result.created else "already recorded",
        )
        return [SlotSet(Slot.ALREADY_OPTED_OUT, True), SlotSet(Slot.OPT_OUT_OUTCOME, Outcome.OPTED_OUT)]

    async def _keep(self, dispatcher: CollectingDispatcher, tracker: Tracker) -> list[EventType]:
        """The customer answered "no": resolve their request, so that marketing may resume, and
        keep what they said, were asked and answered (a `kept_marketing` consent event)."""
        wa_id = tracker.sender_id
        try:
            await run_store(
                _keep_marketing,
                wa_id,
                source=optout_source(tracker.events),
                message_id=message_id_of(tracker.latest_message),
                under=identifier_of(tracker.latest_message),
                evidence=opt_out_evidence(
                    tracker.events, tracker.latest_message, tracker.get_slot(Slot.LANGUAGE)
                ),
            )
        except SQLAlchemyError:
            # Marketing stays suppressed (the safe side); WhatsApp redelivers the "no".
            logger.exception("could not save that %s keeps marketing", mask_identifier(wa_id))
            dispatcher.utter_message(json_message=retry_turn("could not save the answer"))
            return [SlotSet(Slot.OPT_OUT_OUTCOME, Outcome.FAILED)]
        return [SlotSet(Slot.OPT_OUT_OUTCOME, Outcome.KEPT)]


def _keep_marketing(
    conn: Connection,
    wa_id: str,
    source: str,
    message_id: str | None,
    under: Identifier | None,
    evidence: ConsentEvidence,
) -> None:
    at = now()
    keep_marketing(conn, wa_id, message_id, at)
    record_consent_event(conn, wa_id, KEPT_MARKETING, source, message_id, None, at, under, evidence)

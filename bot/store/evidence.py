"""Evidence of a consent change: what the customer said, what they were shown, what they answered.

Regulators put the burden of proof on the business (GDPR Art. 7(1), LGPD Art. 8, the TCPA), so
each consent event keeps, beside its kind, source and time (bot/store/tags.py):
- `words`: the customer's exact words, or the label of the button, template quick reply or link
  they used, and `requested_at` / `request_message_id`: when and with which message they asked;
- `language`: the language the bot detected and answered in;
- the question they were shown: the domain response (`utter_ask_opt_out_form_opt_out_decision`),
  its text and button titles as rendered for them, a `version` (a short hash of that rendering, so
  two events can be compared without the text, and one survives an erasure), and the message id
  of the question when WhatsApp told us (a button tap names the message it belongs to);
- `answer`: their answer, typed or the title of the button they tapped; the event's own
  `message_id` and `occurred_at` are the answer's, i.e. the confirmation.

Pure values and functions; actions/evidence.py reads them off a Rasa conversation.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.store.timestamps import iso, to_db

VERSION_LENGTH = 12  # hex characters of the SHA-256: 48 bits, plenty to tell texts apart


@dataclass(frozen=True, slots=True)
class Question:
    """What the bot asked, as the customer saw it."""

    response: str  # the domain response's name
    text: str
    buttons: tuple[str, ...] = ()  # titles, in order
    payloads: tuple[str, ...] = ()  # the buttons' payloads (part of the version, not stored)
    message_id: str | None = None  # the wamid of the question, when known

    @property
    def version(self) -> str:
        return version_of(self.text, self.buttons, self.payloads)


@dataclass(frozen=True, slots=True)
class ConsentEvidence:
    language: str | None = None
    words: str | None = None
    requested_at: datetime | None = None
    request_message_id: str | None = None
    question: Question | None = None
    answer: str | None = None


def version_of(text: str, titles: Sequence[str] = (), payloads: Sequence[str] = ()) -> str:
    """Pure: a short hash of a rendered text and its buttons; any change to either changes it."""
    rendered = json.dumps(
        {"text": text, "buttons": list(titles), "payloads": list(payloads)},
        ensure_ascii=False,
        sort_keys=True,
    )
    return hashlib.sha256(rendered.encode()).hexdigest()[:VERSION_LENGTH]


def evidence_columns(evidence: ConsentEvidence | None) -> dict[str, Any]:
    """Pure: the consent_events columns of the evidence (all NULL without any)."""
    evidence = evidence or ConsentEvidence()
    question = evidence.question
    return {
        "language": evidence.language,
        "words": evidence.words,
        "requested_at": None if evidence.requested_at is None else to_db(evidence.requested_at),
        "request_message_id": evidence.request_message_id,
        "question_response": question.response if question else None,
        "question_version": question.version if question else None,
        "question_text": question.text if question else None,
        "question_buttons": json.dumps(list(question.buttons), ensure_ascii=False) if question else None,
        "question_message_id": question.message_id if question else None,
        "answer": evidence.answer,
    }


def evidence_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """Pure: a consent_events row's evidence, JSON-ready, grouped as request / question / answer.
    After an erasure the personal parts are None and the response name and version remain."""
    buttons = row.get("question_buttons")
    question = None
    if row.get("question_response") is not None:
        question = {
            "response": row["question_response"],
            "version": row["question_version"],
            "text": row.get("question_text"),
            "buttons": json.loads(buttons) if buttons else None,
            "message_id": row.get("question_message_id"),
        }
    return {
        "language": row.get("language"),
        "request": {
            "words": row.get("words"),
            "at": iso(row.get("requested_at")),
            "message_id": row.get("request_message_id"),
        },
        "question": question,
        # Without a question (an immediate opt-out, Meta's notices, an import) there is no answer.
        "answer": None
        if question is None
        else {"words": row.get("answer"), "at": iso(row["occurred_at"]), "message_id": row.get("message_id")},
    }

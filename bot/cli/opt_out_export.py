"""The rows of `python -m bot customers export-opt-outs`: pure, from what the store returns.

A suppression list is read by other systems (a CRM, another sender), which may know a customer by
any identifier: each row names the customer's active phone number, BSUID and parent BSUID in
columns of their own, its key, and then every identifier it ever had. Former identifiers (a number
the customer changed away from, a rotated BSUID) get their own column: a recycled number's new
owner did not opt out, so a reader must not mistake them for current ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bot.store.identifiers import BSUID, PARENT_BSUID, PHONE
from bot.store.identities import ACTIVE
from bot.store.tags import OptOutRecord

EXPORT_HEADER = (
    "wa_id",
    "user_id",
    "parent_user_id",
    "customer_key",
    "opted_out_at",
    "source",
    "message_id",
    "identifiers",
    "former_identifiers",
    # The first opt-out's evidence (bot/store/evidence.py): the customer's words or the button,
    # template or link used, when and with which message they asked, the language, the question
    # shown (response, version, text, buttons) and their answer; `opted_out_at` and `message_id`
    # above are the confirmation's.
    "language",
    "request_words",
    "requested_at",
    "request_message_id",
    "question_response",
    "question_version",
    "question_text",
    "question_buttons",
    "answer",
)
# How people call each kind of identifier (messages, the dashboard).
KIND_TEXT = {PHONE: "number", BSUID: "BSUID", PARENT_BSUID: "parent BSUID"}


def opt_out_row(record: OptOutRecord, identities: Sequence[Mapping[str, Any]]) -> list[object]:
    """One CSV row for an opted-out customer; `identities` as `identities_of` lists them (active
    first, the newest sighting wins a column)."""
    active = [identity for identity in identities if identity["status"] == ACTIVE]
    former = [identity for identity in identities if identity["status"] != ACTIVE]

    def newest(kind: str) -> str | None:
        of_kind = [identity for identity in active if identity["kind"] == kind]
        return max(of_kind, key=lambda identity: identity["last_seen_at"])["value"] if of_kind else None

    return [
        newest(PHONE),
        newest(BSUID),
        newest(PARENT_BSUID),
        record.key,
        record.opted_out_at.isoformat(),
        record.source,
        record.message_id,
        " ".join(f"{identity['kind']}:{identity['value']}" for identity in active),
        " ".join(f"{identity['kind']}:{identity['value']}" for identity in former),
        *evidence_cells(record.evidence),
    ]


def evidence_cells(evidence: Mapping[str, Any]) -> list[object]:
    """Pure: the evidence columns of a row. Words are the customer's own: SafeCsvWriter keeps a
    spreadsheet from running them ("=HYPERLINK(...)")."""
    request, question, answer = evidence["request"], evidence["question"] or {}, evidence["answer"] or {}
    return [
        evidence["language"],
        request["words"],
        request["at"],
        request["message_id"],
        question.get("response"),
        question.get("version"),
        question.get("text"),
        " | ".join(question.get("buttons") or ()),
        answer.get("words"),
    ]

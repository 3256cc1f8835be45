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
    ]

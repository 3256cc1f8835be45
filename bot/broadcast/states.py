"""The delivery states of a broadcast and the transitions between them, in one place.

A delivery (a row of broadcast_deliveries) is created `pending` and moves only forward:

    pending -> claimed     a worker's batch claim (deliveries.claim_batch)
    pending -> sending     the action's claim: one customer, sent at once (deliveries.claim)
    claimed -> sending     the consent check passed; the request is about to leave
    claimed -> skipped_opted_out | failed   opted out since the selection, or no address
    sending -> sent | failed                WhatsApp's answer (or the status webhooks, reconcile)
    sending -> skipped_opted_out            the action's consent check, after its claim
    sending -> pending                      throttled: WhatsApp did not take the message

sent, skipped_opted_out and failed are final. Pure: no database here; bot/broadcast/deliveries.py
asks `check` before every UPDATE and puts `sources` into its WHERE clauses, so the database only
ever moves a row along this table, however many workers race for it.
"""

from __future__ import annotations

import enum


class DeliveryState(str, enum.Enum):
    """The `state` column of broadcast_deliveries; the values are what the rows store."""

    PENDING = "pending"
    CLAIMED = "claimed"
    SENDING = "sending"
    SENT = "sent"
    SKIPPED_OPTED_OUT = "skipped_opted_out"
    FAILED = "failed"


INITIAL = DeliveryState.PENDING

TRANSITIONS: dict[DeliveryState, frozenset[DeliveryState]] = {
    DeliveryState.PENDING: frozenset({DeliveryState.CLAIMED, DeliveryState.SENDING}),
    DeliveryState.CLAIMED: frozenset(
        {DeliveryState.SENDING, DeliveryState.SKIPPED_OPTED_OUT, DeliveryState.FAILED}
    ),
    DeliveryState.SENDING: frozenset(
        {DeliveryState.SENT, DeliveryState.SKIPPED_OPTED_OUT, DeliveryState.FAILED, DeliveryState.PENDING}
    ),
    DeliveryState.SENT: frozenset(),
    DeliveryState.SKIPPED_OPTED_OUT: frozenset(),
    DeliveryState.FAILED: frozenset(),
}

# What finishing a claim may record (deliveries.finish): an outcome, or pending again (throttled).
OUTCOMES = frozenset(
    {DeliveryState.SENT, DeliveryState.SKIPPED_OPTED_OUT, DeliveryState.FAILED, DeliveryState.PENDING}
)
# A claim still to work on: counted as work left, never sent yet.
TO_DO = frozenset({DeliveryState.PENDING, DeliveryState.CLAIMED})


class ForbiddenTransition(ValueError):
    """A write would move a delivery along no edge of TRANSITIONS."""

    def __init__(self, current: DeliveryState, new: DeliveryState) -> None:
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[current])) or "nothing: it is final"
        super().__init__(
            f"a broadcast delivery may not move from {current.value!r} to {new.value!r}"
            f" (from {current.value!r} it may move to {allowed})"
        )
        self.current = current
        self.new = new


def allowed(current: DeliveryState, new: DeliveryState) -> bool:
    return new in TRANSITIONS[current]


def check(current: DeliveryState, new: DeliveryState) -> None:
    """Raise ForbiddenTransition unless a delivery may move from `current` to `new`."""
    if not allowed(current, new):
        raise ForbiddenTransition(current, new)


def sources(new: DeliveryState) -> frozenset[DeliveryState]:
    """The states a delivery may move to `new` from: the WHERE of the UPDATE that moves it."""
    return frozenset(state for state, targets in TRANSITIONS.items() if new in targets)


def outcome(value: DeliveryState | str) -> DeliveryState:
    """`value` as the state a claim is finished with; ForbiddenTransition (or ValueError, for a
    value that is no state at all) when finishing a claim cannot record it."""
    state = DeliveryState(value)
    if state not in OUTCOMES:
        raise ForbiddenTransition(DeliveryState.SENDING, state)
    return state

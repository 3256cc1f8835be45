"""bot/broadcast/states.py: the delivery states, the transition table and its checks (pure), and
that the states fit what the schema and the migrations store."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from bot.broadcast import states
from bot.broadcast.states import INITIAL, OUTCOMES, TRANSITIONS, DeliveryState, ForbiddenTransition
from bot.schema import broadcast_deliveries

S = DeliveryState
ALLOWED = {
    (S.PENDING, S.CLAIMED),
    (S.PENDING, S.SENDING),
    (S.CLAIMED, S.SENDING),
    (S.CLAIMED, S.SKIPPED_OPTED_OUT),
    (S.CLAIMED, S.FAILED),
    (S.SENDING, S.SENT),
    (S.SENDING, S.SKIPPED_OPTED_OUT),
    (S.SENDING, S.FAILED),
    (S.SENDING, S.PENDING),
}
FINAL = {S.SENT, S.SKIPPED_OPTED_OUT, S.FAILED}
MIGRATIONS = Path(__file__).resolve().parent.parent / "bot" / "migrations" / "versions"


def test_the_stored_values_are_the_ones_the_rows_hold():
    assert [state.value for state in S] == [
        "pending",
        "claimed",
        "sending",
        "sent",
        "skipped_opted_out",
        "failed",
    ]
    assert INITIAL is S.PENDING


def test_the_table_names_every_state_and_nothing_else():
    assert set(TRANSITIONS) == set(S)
    assert {(a, b) for a, targets in TRANSITIONS.items() for b in targets} == ALLOWED


@pytest.mark.parametrize(("current", "new"), sorted(ALLOWED))
def test_every_allowed_transition(current: DeliveryState, new: DeliveryState):
    assert states.allowed(current, new)
    states.check(current, new)


FORBIDDEN = sorted(set(itertools.product(S, S)) - ALLOWED)


@pytest.mark.parametrize(("current", "new"), FORBIDDEN)
def test_every_other_transition_is_refused_with_a_clear_error(current: DeliveryState, new: DeliveryState):
    assert not states.allowed(current, new)
    with pytest.raises(ForbiddenTransition, match=f"from '{current.value}' to '{new.value}'"):
        states.check(current, new)


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (S.SENT, S.PENDING),
        (S.FAILED, S.SENDING),
        (S.SENDING, S.CLAIMED),
        (S.CLAIMED, S.SENT),
        (S.PENDING, S.SENT),
    ],
)
def test_the_moves_that_would_send_twice_or_skip_the_consent_check_are_refused(current, new):
    with pytest.raises(ForbiddenTransition):
        states.check(current, new)


def test_final_states_go_nowhere_and_every_other_state_can_end():
    for state in FINAL:
        assert TRANSITIONS[state] == frozenset()
        assert "it is final" in str(ForbiddenTransition(state, S.PENDING))
    reachable = {INITIAL}
    while True:
        more = reachable | {b for a in reachable for b in TRANSITIONS[a]}
        if more == reachable:
            break
        reachable = more
    assert reachable == set(S)  # no state the table cannot reach


def test_sources_are_the_table_read_backwards():
    assert states.sources(S.SENT) == {S.SENDING}
    assert states.sources(S.PENDING) == {S.SENDING}
    assert states.sources(S.FAILED) == {S.CLAIMED, S.SENDING}
    assert states.sources(S.CLAIMED) == {S.PENDING}


def test_an_outcome_is_what_finishing_a_claim_may_record():
    assert {S.SENT, S.SKIPPED_OPTED_OUT, S.FAILED, S.PENDING} == OUTCOMES
    assert states.outcome("sent") is S.SENT
    for state in OUTCOMES:
        assert states.sources(state) <= {S.CLAIMED, S.SENDING}
    with pytest.raises(ForbiddenTransition):
        states.outcome(S.CLAIMED)
    with pytest.raises(ValueError, match="delivered"):
        states.outcome("delivered")


def test_every_state_fits_the_column():
    length = broadcast_deliveries.c.state.type.length
    assert all(len(state.value) <= length for state in S)


def test_the_migrations_constrain_the_state_column_no_further():
    """No CHECK constraint names the delivery states: the enum is the one list. A migration that
    adds one must list exactly the enum's values (and this test then checks that instead)."""
    for migration in MIGRATIONS.glob("*.py"):
        text = migration.read_text()
        for check in re.findall(r"CheckConstraint\(\s*\"([^\"]*)\"", text):
            assert "state" not in check or set(re.findall(r"'([a-z_]+)'", check)) == {s.value for s in S}

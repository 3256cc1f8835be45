"""May we send marketing? The pure rule, its SQL form for broadcasts, and the per-number check."""

from __future__ import annotations

import ast
import itertools
from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from bot import PROJECT_ROOT
from bot.consent import OPT_OUT, marketing_allowed, marketing_allowed_clause
from bot.db import transaction
from bot.schema import customer_identities, customers
from bot.store.customers import ensure_customer, touch_customer
from bot.store.marketing_consent import may_send_marketing
from bot.store.tags import add_tag, record_consent_event, record_opt_out

phone = customer_identities.c  # every customer here has one identity: their number
AT = datetime(2024, 5, 1, 10, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("tag_names", "allowed"),
    [
        ([], True),
        (["VIP"], True),
        ([OPT_OUT], False),
        (["VIP", OPT_OUT], False),
        (iter([OPT_OUT]), False),  # any iterable, e.g. a result's scalars()
    ],
)
def test_marketing_is_allowed_unless_opted_out(tag_names, allowed):
    assert marketing_allowed(tag_names, opt_out_requested=False) is allowed


@given(st.lists(st.sampled_from([OPT_OUT, "VIP", "LEAD", "opt_out", "OPT_OUT "])))
def test_only_the_exact_opt_out_tag_forbids_marketing(tag_names):
    # Spelling variants are normalised when a tag is written, so the rule itself is exact.
    assert marketing_allowed(tag_names, opt_out_requested=False) is (OPT_OUT not in tag_names)


def test_the_clause_selects_exactly_the_customers_marketing_may_reach(db_url):
    with transaction() as conn:
        ensure_customer(conn, "11111111111")
        add_tag(conn, "22222222222", "VIP", "import", None, AT)
        record_opt_out(conn, "33333333333", "text", "wamid.3", AT)
        add_tag(conn, "44444444444", "VIP", "import", None, AT)
        record_opt_out(conn, "44444444444", "meta_preferences", None, AT)
        record_consent_event(conn, "44444444444", "resume", "meta_preferences", None, None, AT)
    c = customers.alias("c")
    with transaction() as conn:
        allowed = conn.execute(
            select(phone.value).select_from(c.join(customer_identities)).where(marketing_allowed_clause(c))
        ).scalars()
        assert sorted(allowed) == ["11111111111", "22222222222"]
        refused = conn.execute(
            select(phone.value)
            .select_from(customers.join(customer_identities))
            .where(~marketing_allowed_clause(customers))
        ).scalars()
        assert sorted(refused) == ["33333333333", "44444444444"]


_numbers = itertools.count(10_000_000_000)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sets(st.sampled_from([OPT_OUT, "VIP", "LEAD"])), min_size=1, max_size=5))
def test_the_clause_and_the_pure_rule_agree(db_url, tag_sets):
    # Opt-outs cannot be deleted, so every example gets numbers of its own.
    expected = {}
    with transaction() as conn:
        for names in tag_sets:
            wa_id = str(next(_numbers))
            ensure_customer(conn, wa_id)
            for name in names:
                if name == OPT_OUT:
                    record_opt_out(conn, wa_id, "text", f"wamid.{wa_id}", AT)
                else:
                    add_tag(conn, wa_id, name, "import", None, AT)
            expected[wa_id] = marketing_allowed(names, opt_out_requested=False)
    with transaction() as conn:
        rows = conn.execute(
            select(phone.value, marketing_allowed_clause(customers))
            .select_from(customers.join(customer_identities))
            .where(phone.value.in_(expected))
        ).all()
    assert {wa_id: bool(allowed) for wa_id, allowed in rows} == expected


def test_a_number_never_seen_may_receive_marketing(db_url):
    with transaction() as conn:
        assert may_send_marketing(conn, "16505550000") is True


def test_an_opted_out_customer_may_not_whatever_the_number_format(db_url):
    with transaction() as conn:
        touch_customer(conn, "16505551234", "Ada", AT)
        assert may_send_marketing(conn, "16505551234") is True
        record_opt_out(conn, "16505551234", "text", "wamid.1", AT)
    with transaction() as conn:
        assert may_send_marketing(conn, "16505551234") is False
        assert may_send_marketing(conn, "+1 (650) 555-1234") is False


def test_resume_or_signup_after_an_opt_out_does_not_allow_marketing_again(db_url):
    with transaction() as conn:
        record_opt_out(conn, "16505551234", "template", "wamid.1", AT)
        record_consent_event(conn, "16505551234", "resume", "meta_preferences", None, None, AT)
        record_consent_event(conn, "16505551234", "signup", "text", "wamid.2", None, AT)
    with transaction() as conn:
        assert may_send_marketing(conn, "16505551234") is False


def test_something_that_is_not_a_number_is_an_error_not_a_yes(db_url):
    with transaction() as conn, pytest.raises(ValueError, match="phone number"):
        may_send_marketing(conn, "not-a-number")


def test_the_rule_imports_nothing_from_the_store():
    """bot.store imports bot.consent's names; the other way round would be a cycle."""
    tree = ast.parse((PROJECT_ROOT / "bot" / "consent.py").read_text(encoding="utf-8"))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert not {module for module in imported if module.startswith("bot.store")}

"""The dashboard's pure parts: escaping, pages, the opt-out statistics and chart, token handling,
chat bubbles, the simulator's webhook bodies, and how `make run` wires the simulator."""

from __future__ import annotations

import argparse
import itertools
import json
import stat
from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.cli import run as run_cli
from bot.dashboard import auth, pages
from bot.dashboard.bubbles import fill_placeholders, load_template, outbound_bubble
from bot.dashboard.conversation import conversation_lines
from bot.dashboard.html import Safe, attributes, escape, join, render
from bot.dashboard.local_whatsapp import LocalCredentials, wants_simulator
from bot.dashboard.queries import CustomerPage, CustomerRow, OptOutTotals
from bot.dashboard.simulator import (
    SimulatedCustomer,
    SimulatorUnavailable,
    customer_message,
    message_id,
    promo_body,
    read_receipts,
    settings_from_env,
    simulated_customer,
)
from bot.dashboard.stats import PERIODS, Bucket, bar_chart, buckets, count_into, nice_ceiling, period_for
from bot.processes import Ports, commands
from bot.whatsapp.config import WhatsAppConfig
from bot.whatsapp.inbound import parse_webhook
from bot.whatsapp.outbound import Button, button_messages, text_messages

EVIL = "<script>alert(\"x\")</script> & 'quotes'"

# --- html -------------------------------------------------------------------------------------


def test_render_escapes_every_value_and_keeps_safe_markup():
    html = render("<p title={title}>{name} {markup}</p>", title=EVIL, name=EVIL, markup=Safe("<b>ok</b>"))
    assert "<script>" not in html
    assert html.count("&lt;script&gt;") == 2
    assert "&quot;x&quot;" in html and "&#x27;quotes&#x27;" in html
    assert "<b>ok</b>" in html


@given(st.text())
def test_no_text_survives_escaping_as_markup(text):
    escaped = escape(text)
    assert "<" not in escaped and ">" not in escaped and '"' not in escaped
    assert escape(escaped) == escaped  # Safe is not escaped twice


def test_join_and_attributes():
    assert join(["<a>", Safe("<b/>")], ", ") == "&lt;a&gt;, <b/>"
    assert attributes(href="/x?a=1&b=2", selected=True, hidden=False, aria_label='A "B"', class_=None) == (
        ' href="/x?a=1&amp;b=2" selected aria-label="A &quot;B&quot;"'
    )
    assert escape(None) == ""


# --- pages: customer-chosen names are text everywhere -------------------------------------------


def _profile(name: str, opted_out: bool) -> dict:
    tags = [{"name": "VIP", "added_at": "2024-05-01T10:00:00+00:00", "source": "import", "message_id": None}]
    history = []
    if opted_out:
        tags.append(
            {
                "name": "OPT_OUT",
                "added_at": "2024-05-02T09:30:00+00:00",
                "source": "template",
                "message_id": "wamid.1",
            }
        )
        history.append(
            {
                "kind": "opt_out",
                "source": "template",
                "message_id": "wamid.1",
                "detail": EVIL,
                "occurred_at": "2024-05-02T09:30:00+00:00",
                "recorded_at": "2024-05-02T09:30:01+00:00",
                "evidence": {
                    "language": "es",
                    "request": {"words": EVIL, "at": "2024-05-02T09:29:00+00:00", "message_id": "wamid.0"},
                    "question": {
                        "response": "utter_ask_opt_out_form_opt_out_decision",
                        "version": "0123456789ab",
                        "text": "¿Dejar de recibir marketing?",
                        "buttons": ["Sí", EVIL],
                        "message_id": None,
                    },
                    "answer": {"words": "Sí", "at": "2024-05-02T09:30:00+00:00", "message_id": "wamid.1"},
                },
            }
        )
    return {
        "key": "c_abcdefghijklmnopqrst",
        "wa_id": "16505551234",
        "name": name,
        "username": None,
        "language": "es",
        "identities": [],
        "merged": [],
        "first_seen_at": "2024-05-01T10:00:00+00:00",
        "last_seen_at": None,
        "marketing_allowed": not opted_out,
        "opt_out_request": None,
        "tags": tags,
        "consent_history": history,
    }


def test_profile_marks_the_opt_out_with_when_and_how_and_escapes_the_name():
    html = pages.profile_page(_profile(EVIL, opted_out=True), lines=None, records=[])
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert 'class="banner opted-out"' in html
    assert 'Added <time datetime="2024-05-02T09:30:00+00:00">2024-05-02 09:30 UTC</time>' in html
    assert "tapped “Stop promotions” on a marketing template" in html
    assert "cannot be removed" in html
    assert "could not be reached" in html  # no tracker: the fallback is announced
    assert "<form" not in html  # read-only: nothing on the page can write
    # The evidence: language, the words (escaped), the question shown with its version, the answer.
    assert 'id="language">Spanish (es)' in html
    assert "<q>¿Dejar de recibir marketing?</q>" in html and "<code>0123456789ab</code>" in html
    assert "<dt>Answer</dt><dd><q>Sí</q>" in html


def test_profile_without_opt_out_says_marketing_is_allowed():
    html = pages.profile_page(_profile("Ann", opted_out=False), lines=[], records=[])
    assert "Marketing allowed" in html and "opted-out" not in html


def test_conversation_lines_keep_what_was_said_and_escape_it_on_the_page():
    events = [
        {"event": "action", "name": "action_listen", "timestamp": 1},
        {
            "event": "user",
            "timestamp": 1714557600,
            "text": EVIL,
            "parse_data": {"intent": {"name": "opt_out"}},
            "metadata": {"message_kind": "text"},
        },
        {"event": "bot", "timestamp": 1714557601, "text": "Sure?", "data": {"buttons": [{"title": "Yes"}]}},
    ]
    lines = conversation_lines(events)
    assert [(line.speaker, line.detail) for line in lines] == [
        ("customer", "understood as opt_out, text"),
        ("bot", "buttons: Yes"),
    ]
    assert lines[0].at == datetime(2024, 5, 1, 10, 0, tzinfo=timezone.utc)
    html = pages.profile_page(_profile("Ann", opted_out=False), lines=lines, records=[])
    assert "<script>" not in html and "From Rasa" in html


def test_customers_page_escapes_search_names_and_tags():
    page = CustomerPage(
        rows=[CustomerRow("c_abcdefghijklmnopqrst", EVIL, None, ("OPT_OUT", "<VIP>"), phone="16505551234")],
        total=1,
        page=1,
        has_next=True,
    )
    html = pages.customers_page(page, search=EVIL, tag="OPT_OUT", tags=["OPT_OUT", "<VIP>"])
    assert "<script>" not in html and "<VIP>" not in html
    assert '<option value="OPT_OUT" selected>' in html
    assert 'class="tag tag-opt-out">OPT_OUT' in html
    assert 'rel="next"' in html and "page=2" in html
    assert 'method="get"' in html and 'method="post"' not in html


def test_the_customer_list_shows_a_number_else_the_bsuid_and_the_username_as_text():
    rows = [
        CustomerRow("c_aaaaaaaaaaaaaaaaaaaa", "Ann", None, (), phone="16505551234", bsuid="US.1234567"),
        CustomerRow("c_bbbbbbbbbbbbbbbbbbbb", "Ana", None, (), bsuid="DE.7730551842193", username=EVIL),
        CustomerRow("c_cccccccccccccccccccc", None, None, ()),
    ]
    html = pages.customers_page(CustomerPage(rows, 3, 1, False), search="", tag="", tags=[])
    assert '<a href="/customers/c_aaaaaaaaaaaaaaaaaaaa">Ann</a></td><td>+16505551234</td>' in html
    assert '<td>DE.7730551842193<br><span class="muted">@&lt;script&gt;' in html
    assert "<td>c_cccccccccccccccccccc</td>" in html  # no identifier left: the key
    assert "Name, username, number or BSUID" in html


def test_the_profile_lists_identities_with_status_and_evidence_and_the_merges():
    profile = _profile("Ana", opted_out=False)
    profile.update(
        wa_id=None,
        username="ana.example",
        identities=[
            {
                "kind": "bsuid",
                "value": "DE.7730551842193",
                "status": "active",
                "evidence": "webhook_pair",
                "first_seen_at": "2026-09-01T10:00:00+00:00",
                "last_seen_at": "2026-09-02T10:00:00+00:00",
                "superseded_at": None,
            },
            {
                "kind": "phone",
                "value": "4915112345678",
                "status": "superseded",
                "evidence": EVIL,  # an unknown evidence is shown as it is, as text
                "first_seen_at": "2026-08-01T10:00:00+00:00",
                "last_seen_at": "2026-08-02T10:00:00+00:00",
                "superseded_at": "2026-08-03T10:00:00+00:00",
            },
        ],
        merged=[
            {
                "from_key": "c_bbbbbbbbbbbbbbbbbbbb",
                "into_key": "c_abcdefghijklmnopqrst",
                "evidence": "status_pair",
                "message_id": "wamid.9",
                "merged_at": "2026-09-01T11:00:00+00:00",
            }
        ],
    )
    html = pages.profile_page(profile, lines=[], records=[])
    assert '<h1>Ana <span class="muted">DE.7730551842193</span></h1>' in html
    assert "Username @ana.example." in html and "<code>c_abcdefghijklmnopqrst</code>" in html
    table = html.split('id="identities"')[1].split("</table>")[0]
    assert "<td>BSUID</td><td><code>DE.7730551842193</code></td><td>active</td>" in table
    assert "one WhatsApp message or notice carried it with another identifier" in table
    assert (
        '<td>Phone number</td><td><code>+4915112345678</code></td><td>former (since <time datetime="2026-08-03'
        in table
    )
    assert "<script>" not in table and "&lt;script&gt;" in table
    merges = html.split('id="merges"')[1]
    assert "<code>c_bbbbbbbbbbbbbbbbbbbb</code> merged into <code>c_abcdefghijklmnopqrst</code>" in merges
    assert "a delivery status from WhatsApp" in merges


def test_a_profile_without_identities_or_merges_says_so():
    html = pages.profile_page(_profile("Ann", opted_out=False), lines=[], records=[])
    assert "No WhatsApp identifier" in html and 'id="merges"' not in html


def test_layout_marks_the_current_page_and_shows_the_simulator_only_when_on():
    assert '<a href="/opt-outs" aria-current="page">' in pages.layout("t", Safe(""), "/opt-outs")
    assert "/simulator" not in pages.layout("t", Safe(""), "/customers", simulator=False)
    assert "/simulator" in pages.layout("t", Safe(""), "/customers", simulator=True)


def test_login_page_escapes_the_next_address():
    html = pages.login_page('/customers?q="><script>')
    assert "<script>" not in html and 'name="next" value="/customers?q=&quot;&gt;&lt;script&gt;"' in html


def test_opt_outs_page_has_the_chart_and_its_numbers_as_a_table():
    period = period_for("30d")
    bucket_list = buckets(period, date(2024, 5, 30))
    counts = [0] * 29 + [3]
    html = pages.opt_outs_page(period, bucket_list, counts, OptOutTotals(10, 3, {"text": 2, "template": 1}))
    assert "<svg" in html and "<table>" in html
    assert "30.0%" in html
    assert "<tr><td>2024-05-30</td><td>3</td></tr>" in html


# --- stats ------------------------------------------------------------------------------------


def test_daily_buckets_end_today():
    days = buckets(period_for("30d"), date(2024, 3, 1))
    assert len(days) == 30
    assert days[-1] == Bucket(date(2024, 3, 1), date(2024, 3, 2), "2024-03-01")
    assert days[0].start == date(2024, 2, 1)  # February 2024 has 29 days


def test_weekly_buckets_start_on_monday():
    weeks = buckets(period_for("12w"), date(2024, 5, 1))  # a Wednesday
    assert weeks[-1].start == date(2024, 4, 29) and weeks[-1].end == date(2024, 5, 6)
    assert all(b.start.weekday() == 0 and (b.end - b.start).days == 7 for b in weeks)
    assert all(a.end == b.start for a, b in itertools.pairwise(weeks))


def test_monthly_buckets_cross_the_year():
    months = buckets(period_for("12m"), date(2024, 2, 29))
    assert [b.label for b in months][:2] == ["2023-03", "2023-04"]
    assert months[-1] == Bucket(date(2024, 2, 1), date(2024, 3, 1), "2024-02")
    assert all(a.end == b.start for a, b in itertools.pairwise(months))


def test_unknown_period_falls_back_to_the_default():
    assert period_for("<script>") == PERIODS[0] and period_for(None) == PERIODS[0]


def test_count_into_uses_the_utc_day_and_ignores_moments_outside():
    days = buckets(period_for("30d"), date(2024, 5, 30))
    utc = timezone.utc
    moments = [
        datetime(2024, 5, 30, 23, 59, tzinfo=utc),
        # 00:30 on May 31 in Berlin is still May 30 in UTC.
        datetime(2024, 5, 31, 0, 30, tzinfo=timezone(timedelta(hours=2))),
        datetime(2024, 5, 1, 0, 0, tzinfo=utc),  # the first day
        datetime(2024, 4, 30, 23, 59, tzinfo=utc),  # before the period
        datetime(2024, 5, 31, 0, 0, tzinfo=utc),  # after it
        datetime(2024, 5, 15, 12, 0),  # naive values from SQLite are UTC
    ]
    counts = count_into(days, moments)
    assert counts[-1] == 2 and counts[0] == 1 and counts[14] == 1 and sum(counts) == 4


@pytest.mark.parametrize(
    ("value", "ceiling"), [(0, 1), (1, 1), (2, 2), (3, 5), (7, 10), (11, 20), (250, 500)]
)
def test_nice_ceiling(value, ceiling):
    assert nice_ceiling(value) == ceiling


def test_bar_chart_draws_one_bar_per_bucket_with_an_accessible_name():
    svg = bar_chart(["a", "b", "<c>"], [0, 2, 1], title="Opt-outs <30 days>", description="3 opt-outs")
    assert svg.count('<rect class="bar"') == 3
    assert 'role="img"' in svg and '<title id="chart-title">Opt-outs &lt;30 days&gt;</title>' in svg
    assert "<c>" not in svg and "&lt;c&gt;: 1 opt-out</title>" in svg
    heights = [float(part.split('"')[0]) for part in svg.split('height="')[1:]]
    assert heights[0] == 0 and heights[1] == 2 * heights[2]  # the axis top is 2


def test_bar_chart_of_an_empty_period_has_flat_bars():
    svg = bar_chart(["a", "b"], [0, 0], title="t", description="d")
    assert svg.count('height="0.0"') == 2


# --- auth ---------------------------------------------------------------------------------------


def test_session_cookie_is_derived_from_the_token_and_checked_exactly():
    value = auth.session_value("secret", 1_800_000_000)
    assert "secret" not in value and len(value.partition(".")[2]) == 64
    assert auth.session_valid(value, "secret", 1_800_000_000)
    assert not auth.session_valid(value, "other", 1_800_000_000)
    assert not auth.session_valid(None, "secret", 1_800_000_000)
    assert auth.token_matches("secret", "secret") and not auth.token_matches("", "secret")


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/customers?q=1", "/customers?q=1"),
        ("//evil.example/x", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("", "/"),
        (None, "/"),
    ],
)
def test_after_login_only_local_paths(target, expected):
    assert auth.local_path(target) == expected


@pytest.mark.parametrize(
    ("headers", "refused"),
    [
        ({}, False),
        ({"Sec-Fetch-Site": "same-origin", "Origin": "http://127.0.0.1:5080"}, False),
        ({"Sec-Fetch-Site": "cross-site"}, True),
        ({"Sec-Fetch-Site": "same-site"}, True),
        ({"Origin": "http://evil.example"}, True),
    ],
)
def test_cross_site_requests(headers, refused):
    assert auth.cross_site(headers, "127.0.0.1:5080") is refused


# --- bubbles: what the bot sent, as the simulator shows it ------------------------------------


def test_text_and_reply_buttons_as_the_channel_builds_them():
    [text] = text_messages("1555", "Hello")
    assert outbound_bubble(text) == {"kind": "text", "text": "Hello"}
    [question] = button_messages(
        "1555", "Stop?", [Button("Yes, stop them", "/affirm"), Button("No", "/deny")]
    )
    assert outbound_bubble(question) == {
        "kind": "buttons",
        "text": "Stop?",
        "footer": "",
        "buttons": [{"id": "/affirm", "title": "Yes, stop them"}, {"id": "/deny", "title": "No"}],
    }


def test_a_list_message_keeps_its_rows():
    choices = [Button(f"Option {n}", f'/choose{{"n": {n}}}') for n in range(5)]
    [body] = button_messages("1555", "Pick one", choices)
    bubble = outbound_bubble(body)
    assert bubble["kind"] == "list" and bubble["button"]
    rows = [row for section in bubble["sections"] for row in section["rows"]]
    assert [row["id"] for row in rows] == [c.payload for c in choices]


def test_the_promo_template_shows_its_text_and_the_stop_promotions_quick_reply():
    bubble = outbound_bubble(promo_body(SimulatedCustomer(wa_id="1555"), load_template("promo_offer")))
    assert bubble["kind"] == "template" and bubble["name"] == "promo_offer"
    assert "This week only: 20% off all shoes." in bubble["text"]
    assert bubble["footer"]
    assert bubble["quick_replies"] == [{"payload": "STOP_PROMOTIONS", "text": "Stop promotions"}]


def test_unknown_templates_and_types_are_described_not_guessed(tmp_path):
    body = {"type": "template", "template": {"name": "../../etc/passwd", "components": []}}
    assert outbound_bubble(body, tmp_path)["text"].startswith("Template ../../etc/passwd")
    assert outbound_bubble({"type": "sticker", "sticker": {}})["kind"] == "other"
    image = outbound_bubble({"type": "image", "image": {"link": "https://example.com/a.png", "caption": "A"}})
    assert image == {"kind": "image", "text": "A", "link": "https://example.com/a.png"}


def test_fill_placeholders_leaves_missing_ones():
    assert fill_placeholders("{{1}} and {{2}} and {{10}}", ["a", "b"]) == "a and b and {{10}}"


# --- the simulator's webhooks are the ones Meta sends -------------------------------------------


@pytest.mark.parametrize(
    ("action", "kind", "bubble"),
    [
        ({"type": "text", "text": " STOP "}, "TextMessage", {"kind": "text", "text": "STOP"}),
        (
            {"type": "button_reply", "id": "/affirm", "title": "Yes"},
            "ButtonReply",
            {"kind": "tap", "text": "Yes"},
        ),
        ({"type": "list_reply", "id": "row-1", "title": "One"}, "ListReply", {"kind": "tap", "text": "One"}),
        (
            {
                "type": "quick_reply",
                "payload": "STOP_PROMOTIONS",
                "text": "Stop promotions",
                "context": "wamid.T",
            },
            "QuickReply",
            {"kind": "tap", "text": "Stop promotions"},
        ),
    ],
)
def test_customer_actions_become_webhooks_the_channel_parses(action, kind, bubble):
    payload, shown = customer_message(SimulatedCustomer(wa_id="15551234567"), EVIL, action)
    assert shown == bubble
    [message] = parse_webhook(json.loads(json.dumps(payload))).messages
    assert type(message).__name__ == kind
    assert message.wa_id == "15551234567" and message.name == EVIL
    assert message.id == message_id(payload)
    if action.get("context"):
        assert message.context_id == "wamid.T"


@pytest.mark.parametrize(
    "action",
    [
        {"type": "text", "text": "  "},
        {"type": "text", "text": "x" * 4097},
        {"type": "image"},
        {"type": "button_reply"},
    ],
)
def test_bad_customer_actions_are_refused(action):
    with pytest.raises(ValueError):
        customer_message(SimulatedCustomer(wa_id="15551234567"), "A", action)


def test_read_receipts_report_delivered_then_read_and_keep_callback_data():
    records = [{"id": "wamid.FAKE1", "body": {"to": "1555", "biz_opaque_callback_data": "b-1"}}]
    batch = parse_webhook(read_receipts(records, at=1714557600))
    assert [(s.message_id, s.raw_status, s.recipient_id) for s in batch.statuses] == [
        ("wamid.FAKE1", "delivered", "1555"),
        ("wamid.FAKE1", "read", "1555"),
    ]
    assert batch.statuses[0].callback_data == "b-1"


BSUID = "DE.7730551842193"
HIDDEN = SimulatedCustomer(user_id=BSUID, username="ana.example")


def test_a_username_customer_s_webhook_has_no_phone_number_anywhere():
    payload, shown = customer_message(HIDDEN, "Ana", {"type": "text", "text": "STOP"})
    value = payload["entry"][0]["changes"][0]["value"]
    assert value["contacts"] == [{"profile": {"name": "Ana", "username": "ana.example"}, "user_id": BSUID}]
    [raw] = value["messages"]
    assert raw["from_user_id"] == BSUID and "from" not in raw
    [message] = parse_webhook(json.loads(json.dumps(payload))).messages
    assert message.wa_id is None and message.sender.bsuid.value == BSUID
    assert message.sender.username == "ana.example" and shown == {"kind": "text", "text": "STOP"}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"wa_id": "+1 555 123 4567"}, SimulatedCustomer(wa_id="15551234567")),
        ({"wa_id": "15551234567", "user_id": BSUID}, SimulatedCustomer(user_id=BSUID)),  # the switch wins
        ({"user_id": f" {BSUID} ", "username": "@Ana.Example"}, HIDDEN),
        ({"user_id": BSUID, "username": ""}, SimulatedCustomer(user_id=BSUID)),
    ],
)
def test_who_the_simulated_customer_is(fields, expected):
    assert simulated_customer(fields) == expected


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"wa_id": "123"},
        {"user_id": "de.7730551842193"},
        {"user_id": "US.ENT.11815799212886844830"},
        {"user_id": "US." + "1" * 129},
        {"user_id": BSUID, "username": "ab"},
        {"user_id": BSUID, "username": "ana-example"},
    ],
)
def test_malformed_simulated_customers_are_refused(fields):
    with pytest.raises(ValueError):
        simulated_customer(fields)


def test_the_promo_and_the_receipts_of_a_username_customer_use_the_bsuid():
    body = promo_body(HIDDEN, load_template("promo_offer"))
    assert body["recipient"] == BSUID and "to" not in body
    assert promo_body(SimulatedCustomer(wa_id="1555"), None)["to"] == "1555"
    receipts = read_receipts([{"id": "wamid.B1", "body": body}], at=1714557600, customer=HIDDEN)
    value = receipts["entry"][0]["changes"][0]["value"]
    assert value["contacts"] == [{"profile": {"username": "ana.example"}, "user_id": BSUID}]
    assert [("recipient_id" in s, s["recipient_user_id"]) for s in value["statuses"]] == [(False, BSUID)] * 2
    assert [s.raw_status for s in parse_webhook(receipts).statuses] == ["delivered", "read"]


LOCAL_ENV = {
    "WHATSAPP_API_URL": "http://127.0.0.1:5081/v21.0",
    "WHATSAPP_APP_SECRET": "s",
    "WHATSAPP_ACCESS_TOKEN": "a",
    "WHATSAPP_PHONE_NUMBER_ID": "1",
}


def test_simulator_settings_when_the_bot_sends_to_the_stand_in():
    settings = settings_from_env(LOCAL_ENV, "http://127.0.0.1:5081/", "http://127.0.0.1:5005")
    assert settings.webhook_url == "http://127.0.0.1:5005/webhooks/whatsapp/webhook"
    assert settings.api_url == "http://127.0.0.1:5081/v21.0"


@pytest.mark.parametrize(
    ("env", "stand_in", "reason"),
    [
        (
            {**LOCAL_ENV, "WHATSAPP_API_URL": "https://graph.facebook.com/v21.0"},
            "http://127.0.0.1:5081",
            "real phones",
        ),
        (
            {k: v for k, v in LOCAL_ENV.items() if k != "WHATSAPP_API_URL"},
            "http://127.0.0.1:5081",
            "real phones",
        ),
        (
            {**LOCAL_ENV, "WHATSAPP_API_URL": "http://127.0.0.1:50812/v21.0"},
            "http://127.0.0.1:5081",
            "real phones",
        ),
        ({**LOCAL_ENV, "WHATSAPP_APP_SECRET": ""}, "http://127.0.0.1:5081", "WHATSAPP_APP_SECRET"),
        (LOCAL_ENV, "http://10.0.0.5:5081", "loopback"),
    ],
)
def test_the_simulator_stays_off_unless_replies_stay_on_this_machine(env, stand_in, reason):
    with pytest.raises(SimulatorUnavailable, match=reason):
        settings_from_env(env, stand_in, "http://127.0.0.1:5005")


# --- make run: simulator wiring -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("credentials", "wanted"),
    [
        ({}, True),
        ({"verify_token": "v"}, True),
        ({"app_secret": "s"}, False),
        ({"access_token": "a", "phone_number_id": "1"}, False),
    ],
)
def test_simulator_only_without_any_whatsapp_credential(credentials, wanted):
    assert wants_simulator(WhatsAppConfig.load(credentials, environ={})) is wanted


def test_local_credentials_are_made_once_private_and_wire_the_bot_to_the_stand_in(tmp_path):
    path = tmp_path / "var" / "simulator_credentials.json"
    first = LocalCredentials.load_or_create(path)
    assert LocalCredentials.load_or_create(path) == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    env = first.environment("http://127.0.0.1:5081")
    config = WhatsAppConfig.load({}, environ=env)
    assert config.api_url == "http://127.0.0.1:5081/v21.0" and config.can_send and config.warnings() == []
    assert (
        settings_from_env(env, "http://127.0.0.1:5081", "http://127.0.0.1:5005").app_secret
        == first.app_secret
    )


def test_run_starts_the_dashboard_and_with_the_simulator_the_stand_in():
    ports = Ports(rasa=5005, actions=5055, dashboard=5080, stand_in=5081)
    real = commands(ports)
    assert len(real) == 3 and real[2][1:] == ["-m", "bot.dashboard", "--port", "5080", "--rasa-port", "5005"]
    local = commands(ports, simulator=True)
    assert local[2][-2:] == ["--simulator", "http://127.0.0.1:5081"]
    # the stand-in's token comes from WHATSAPP_ACCESS_TOKEN, never from its command line
    assert local[3][1:] == ["-m", "bot.fake_graph_api", "--port", "5081"]


def test_ports_from_the_environment():
    ports = Ports.from_env({"DASHBOARD_PORT": "6080", "SIMULATOR_GRAPH_PORT": "6081"})
    assert (ports.rasa, ports.actions, ports.dashboard, ports.stand_in_url) == (
        5005,
        5055,
        6080,
        "http://127.0.0.1:6081",
    )


@pytest.fixture
def run_command(tmp_path, monkeypatch):
    """`python -m bot run` up to starting the processes: what it would start, with which env."""
    started: dict = {}

    def supervise(argv_list, env):
        started.update(argv_list=argv_list, env=env)
        return 0

    for variable in (
        "WHATSAPP_APP_SECRET",
        "WHATSAPP_ACCESS_TOKEN",
        "WHATSAPP_PHONE_NUMBER_ID",
        "WHATSAPP_API_URL",
    ):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("RASA_AUTH_TOKEN", "the-admin-token")
    monkeypatch.setattr(run_cli, "VAR_DIR", tmp_path)
    monkeypatch.setattr(run_cli, "supervise", supervise)
    return started


def test_make_run_without_credentials_wires_the_bot_to_the_simulator(run_command, tmp_path, capsys):
    assert run_cli._run(argparse.Namespace(model="models")) == 0
    out = capsys.readouterr().out
    assert "Simulator:         http://127.0.0.1:5080/simulator?token=the-admin-token" in out
    env = run_command["env"]
    assert env["WHATSAPP_API_URL"] == "http://127.0.0.1:5081/v21.0"
    assert (
        env["WHATSAPP_APP_SECRET"]
        == json.loads((tmp_path / "simulator_credentials.json").read_text())["app_secret"]
    )
    assert [argv[2] for argv in run_command["argv_list"][2:]] == ["bot.dashboard", "bot.fake_graph_api"]
    assert "--simulator" in run_command["argv_list"][2]


def test_make_run_with_credentials_keeps_them_and_the_simulator_off(
    run_command, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("WHATSAPP_APP_SECRET", "real-secret")
    assert run_cli._run(argparse.Namespace(model="models")) == 0
    out = capsys.readouterr().out
    assert "the-admin-token" not in out and "Simulator" not in out
    assert run_command["env"]["WHATSAPP_APP_SECRET"] == "real-secret"
    assert "WHATSAPP_API_URL" not in run_command["env"]
    assert len(run_command["argv_list"]) == 3 and "--simulator" not in run_command["argv_list"][2]
    assert not (tmp_path / "simulator_credentials.json").exists()

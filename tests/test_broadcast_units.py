"""The pure parts of broadcasts: pacing, CSV audiences, the message body, report aggregation."""

from __future__ import annotations

import io
import json
from collections import Counter
from datetime import datetime, timezone

import pytest

from bot import PROJECT_ROOT
from bot.broadcast.audience import Audience, AudienceNumber, parse_audience_csv
from bot.broadcast.deliveries import Broadcast
from bot.broadcast.rate import (
    MIN_RATE,
    RECOVER_AFTER,
    UNLIMITED,
    Bucket,
    book,
    burst,
    effective_rate,
    lowered,
)
from bot.broadcast.report import ReportRow, aggregate, format_report
from bot.broadcast.template import STOP_PAYLOAD, buttons_of, template_message
from bot.broadcast.worker import batch_size
from bot.cli.broadcast import _line, default_workers
from bot.store.customer_import import Problem
from bot.whatsapp.rasa_input import QuickReplyTable

# --- the shared token bucket (pure) ---


def send_times(target: float, count: int, start: float = 0.0, bucket: Bucket | None = None) -> list[float]:
    """When each of `count` one-message batches, all booked at `start`, may go."""
    bucket = bucket or Bucket(tokens=burst(target), updated_at=start)
    times = []
    for _ in range(count):
        bucket, wait = book(bucket, target, 1, start)
        times.append(start + wait)
    return times


def test_the_bucket_spaces_sends_at_the_rate_after_a_small_burst():
    times = send_times(80, 88)
    assert times[:8] == [0.0] * 8  # a tenth of a second's worth at once
    assert times[8] == pytest.approx(1 / 80)
    assert times[-1] == pytest.approx(80 / 80)
    assert sum(1 for t in times if t < 1.0) == 87  # 8 + 79.x: never more than rate x time + burst


def test_a_batch_books_its_tokens_at_once_and_the_next_waits_for_them():
    bucket, wait = book(Bucket(tokens=8, updated_at=0.0), 80, 8, 0.0)
    assert wait == 0.0
    bucket, wait = book(bucket, 80, 8, 0.0)
    assert wait == pytest.approx(0.1)
    _, wait = book(bucket, 80, 8, 100.0)  # idle time saves at most the burst
    assert wait == 0.0


def test_unlimited_never_waits():
    bucket = Bucket(tokens=0, updated_at=0.0)
    for _ in range(3):
        bucket, wait = book(bucket, UNLIMITED, 50, 0.0)
        assert wait == 0.0


def test_a_130429_halves_the_rate_for_a_minute_once_per_second():
    bucket = lowered(Bucket(tokens=8, updated_at=0.0), 80, 10.0)
    assert effective_rate(bucket, 80, 10.0) == 40
    assert lowered(bucket, 80, 10.5) == bucket  # the same excess, answered by the batch in flight
    again = lowered(bucket, 80, 11.0)
    assert effective_rate(again, 80, 11.0) == 20
    assert effective_rate(again, 80, 11.0 + RECOVER_AFTER) == 80  # a quiet minute: back to the rate
    assert effective_rate(lowered(Bucket(0, 0.0), UNLIMITED, 0.0), UNLIMITED, 0.0) == 40  # from 80
    slowest = Bucket(0, 0.0)
    for second in range(20):
        slowest = lowered(slowest, 80, float(second))
    assert effective_rate(slowest, 80, 19.0) == MIN_RATE


def test_a_bucket_needs_a_positive_rate():
    with pytest.raises(ValueError):
        book(Bucket(0, 0.0), 0, 1, 0.0)


def test_batches_are_a_tenth_of_a_second_of_sends():
    assert [batch_size(r) for r in (1, 80, 1000, UNLIMITED)] == [1, 8, 50, 50]


# --- CSV audience ---


def parse(text: str) -> list:
    return list(parse_audience_csv(io.StringIO(text)))


def test_csv_numbers_are_normalised_and_other_columns_ignored():
    assert parse("Name, PHONE ,email\nAda,+1 (650) 555-1234,a@x\n\n,,\nBo,44 7700 900123\n") == [
        AudienceNumber(2, "16505551234"),
        AudienceNumber(5, "447700900123"),
    ]


def test_csv_problems_carry_their_line_numbers():
    assert parse("wa_id,name\n123,Short\n,Nobody\n16505551234\n") == [
        Problem(
            2,
            "invalid phone number: not a phone number in international form (7-15 digits, country code first)",
        ),
        Problem(3, "missing phone number or user_id"),
        AudienceNumber(4, "16505551234"),
    ]


BAD_BSUID = "not a BSUID (two capital letters, '.', optional 'ENT.', 1-128 letters or digits)"


def test_csv_user_ids_stand_beside_or_instead_of_numbers():
    text = "phone,user_id\n+1 650 555 1234,\n,DE.7730551842193\n447700900123,US.ENT.118157\n,de.123\n,4915112345678\n"
    assert parse(text) == [
        AudienceNumber(2, "16505551234"),
        AudienceNumber(3, "DE.7730551842193"),
        AudienceNumber(4, "447700900123"),
        AudienceNumber(4, "US.ENT.118157"),
        Problem(5, f"invalid user_id: {BAD_BSUID}"),
        Problem(6, f"invalid user_id: {BAD_BSUID}"),
    ]
    assert parse("user_id\nBR.55512\n") == [AudienceNumber(2, "BR.55512")]


@pytest.mark.parametrize(
    "header", ["name,email\n", "wa_id,phone\n", "wa_id,wa_id\n", "phone,wa_id,user_id\n", ""]
)
def test_csv_needs_one_number_column_or_a_user_id_column(header):
    [problem] = parse(header + "16505551234,x\n")
    assert isinstance(problem, Problem) and problem.line == 1


def test_an_unbalanced_quote_is_a_problem_not_a_swallowed_file():
    items = parse('wa_id\n"16505551234\n16505551235\n')
    assert isinstance(items[-1], Problem)
    assert "unreadable CSV" in items[-1].message


def test_the_csv_is_read_lazily():
    numbers = parse_audience_csv(f"{n}\n" for n in ["wa_id", *range(49151000000, 49152000000)])
    assert next(numbers) == AudienceNumber(2, "49151000000")  # without reading a million lines


def test_the_audience_says_what_it_is():
    assert Audience().description == "all customers"
    assert Audience(tag="VIP").description == "customers tagged VIP"
    assert "sha256 abc" in Audience(file=PROJECT_ROOT / "x.csv", file_sha256="abc").description


# --- the message ---


def test_the_template_carries_the_params_the_stop_payload_and_the_broadcast_id():
    body = template_message("16505551234", "promo_offer", "en_US", ["20% off", "Friday"], "b-1")
    assert body == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "16505551234",
        "type": "template",
        "template": {
            "name": "promo_offer",
            "language": {"code": "en_US"},
            "components": [
                {
                    "type": "body",
                    "parameters": [{"type": "text", "text": "20% off"}, {"type": "text", "text": "Friday"}],
                },
                {
                    "type": "button",
                    "sub_type": "quick_reply",
                    "index": "0",
                    "parameters": [{"type": "payload", "payload": "STOP_PROMOTIONS"}],
                },
            ],
        },
        "biz_opaque_callback_data": "b-1",
    }


def test_a_template_without_params_has_only_the_button():
    body = template_message("16505551234", "promo_offer", "en_US", [], "b-1")
    assert [c["type"] for c in body["template"]["components"]] == ["button"]


def test_the_shipped_template_has_the_stop_button_where_the_sender_puts_its_payload():
    template = json.loads((PROJECT_ROOT / "templates" / "promo_offer.json").read_text())
    assert template["category"] == "MARKETING"
    body = next(c for c in template["components"] if c["type"] == "BODY")
    assert "{{1}}" in body["text"] and len(body["example"]["body_text"][0]) == 1
    buttons = next(c for c in template["components"] if c["type"] == "BUTTONS")["buttons"]
    assert buttons[buttons_of(template).stop_quick_reply] == {
        "type": "QUICK_REPLY",
        "text": "Stop promotions",
    }


def test_the_stop_payload_and_label_lead_to_the_opt_out_intent():
    table = QuickReplyTable.from_file(PROJECT_ROOT / "quick_replies.yml")
    assert table.intent_for(STOP_PAYLOAD) == "opt_out"
    assert table.intent_for("Stop promotions") == "opt_out"


# --- running counts and the report ---


def test_the_progress_line_counts_this_runs_outcomes():
    before = Counter({"pending": 6, "sent": 10})
    after = Counter({"sent": 11, "skipped_opted_out": 1, "failed": 1, "sending": 1, "pending": 2})
    assert _line(before, after, 6, 2.0) == "sent 1, skipped (opted out) 1, failed 1 | 4/6 in 2.0 s (2.0/s)"


def test_the_report_counts_statuses_of_sent_messages_and_failures_by_code():
    rows = [
        ReportRow("sent", None, None, 5),  # no webhook yet
        ReportRow("sent", "sent", None, 4),
        ReportRow("sent", "delivered", None, 3),
        ReportRow("sent", "read", None, 2),
        ReportRow("sent", "failed", 131050, 1),
        ReportRow("failed", None, 131050, 2),
        ReportRow("failed", None, 131026, 1),
        ReportRow("skipped_opted_out", None, None, 6),
        ReportRow("sending", None, None, 1),
        ReportRow("pending", None, 130429, 7),
        ReportRow("pending", None, None, 1),
    ]
    report = aggregate(rows, skipped_at_selection=10)
    assert (report.sent, report.delivered, report.read) == (15, 5, 2)
    assert (report.failed, report.failed_at_send, report.failed_after_send) == (4, 3, 1)
    assert report.failed_by_code == Counter({131050: 3, 131026: 1})
    assert (report.skipped_opted_out, report.skipped_at_selection, report.skipped_at_send) == (16, 10, 6)
    assert (report.interrupted, report.pending) == (1, 8)


def test_the_report_text_names_every_count():
    broadcast = Broadcast(
        "b-1", "promo_offer", "en_US", ("x",), "all customers", 80.0, 30, 3,
        datetime(2025, 3, 1, tzinfo=timezone.utc),
    )  # fmt: skip
    text = format_report(broadcast, aggregate([ReportRow("failed", None, None, 1)], 3))
    for expected in [
        "audience:     30 (all customers)",
        "sent:         0",
        "delivered:    0",
        "read:         0",
        "failed:       1 (1 when sending, 0 after); by error code: no code: 1",
        "skipped (opted out): 3 (3 at selection, 0 at send time)",
        "interrupted:  0",
        "pending:      0",
    ]:
        assert expected in text


def test_workers_default_to_the_cores_except_on_sqlite():
    assert default_workers("sqlite:///var/bot.sqlite3", 8) == 1
    assert default_workers("postgresql://bot@db/bot", 8) == 8
    assert default_workers("postgresql://bot@db/bot", None) == 1

"""Selecting a broadcast's audience in SQL, on SQLite and PostgreSQL: opted-out customers are left
out, --tag and --audience narrow it, a dry run writes nothing and a re-run adds nothing."""

from __future__ import annotations

import io
import socket
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from bot.broadcast import audience as audiences
from bot.broadcast import deliveries
from bot.broadcast.audience import Audience, Selection
from bot.broadcast.report import aggregate, load_rows
from bot.cli import main
from bot.db import transaction
from bot.schema import broadcast_deliveries, broadcasts, customer_identities, message_statuses
from bot.store.customers import ensure_customer
from bot.store.identities import resolve
from bot.store.tags import add_tag, record_opt_out

AT = datetime(2025, 3, 1, 10, 0, tzinfo=timezone.utc)
# 10 customers; 3 opted out (one of them VIP); 4 VIP in all.
NUMBERS = [f"4915100000{i:03d}" for i in range(10)]
OPTED_OUT = {NUMBERS[1], NUMBERS[4], NUMBERS[7]}
VIP = {NUMBERS[0], NUMBERS[1], NUMBERS[2], NUMBERS[3]}


@pytest.fixture
def store(db_url) -> str:
    with transaction() as conn:
        for wa_id in NUMBERS:
            ensure_customer(conn, wa_id)
        for wa_id in VIP:
            add_tag(conn, wa_id, "VIP", "import", None, AT)
        for wa_id in OPTED_OUT:
            record_opt_out(conn, wa_id, "text", None, AT)
    return db_url


def selected(broadcast_id: str) -> set[str]:
    """The phone numbers of the customers with a delivery of the broadcast."""
    with transaction() as conn:
        return set(
            conn.execute(
                select(customer_identities.c.value)
                .join_from(
                    broadcast_deliveries,
                    customer_identities,
                    customer_identities.c.customer_id == broadcast_deliveries.c.customer_id,
                )
                .where(broadcast_deliveries.c.broadcast_id == broadcast_id)
            ).scalars()
        )


def rows(table) -> int:
    with transaction() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def create(broadcast_id: str, audience: Audience | None = None) -> deliveries.Broadcast:
    audience = audience or Audience()
    with transaction() as conn:
        selection = audiences.count(conn, audience)
        return deliveries.create(
            conn, broadcast_id, "promo_offer", "en_US", ["x"], audience, 80.0, selection.audience, AT
        )


def load_csv(conn, text: str) -> audiences.FileLoad:
    return audiences.load_numbers(conn, audiences.parse_audience_csv(io.StringIO(text)), batch_size=2)


def test_everyone_but_the_opted_out_customers_is_selected(store):
    with transaction() as conn:
        assert audiences.count(conn, Audience()) == Selection(audience=10, allowed=7)
    broadcast = create("b-all")
    assert selected("b-all") == set(NUMBERS) - OPTED_OUT
    assert (broadcast.audience_count, broadcast.excluded_opted_out) == (10, 3)
    with transaction() as conn:
        states = set(conn.execute(select(broadcast_deliveries.c.state)).scalars())
    assert states == {"pending"}


def test_a_tag_narrows_the_audience_and_opted_out_taggees_stay_out(store):
    with transaction() as conn:
        assert audiences.count(conn, Audience(tag="VIP")) == Selection(audience=4, allowed=3)
    create("b-vip", Audience(tag="VIP"))
    assert selected("b-vip") == VIP - OPTED_OUT


def test_a_csv_audience_selects_known_numbers_once_and_never_opted_out_ones(store):
    csv = "phone\n+49 151 00000000\n4915100000001\n4915100000000\n4915100000005\n4915199999999\n"
    audience = Audience(file=Path("audience.csv"), file_sha256="x")
    with transaction() as conn:
        load = load_csv(conn, csv)
        assert (load.numbers, load.problem_count) == (4, 0)  # a duplicate; one unknown number
        selection = audiences.count(conn, audience)
        assert selection == Selection(audience=3, allowed=2)
        deliveries.create(conn, "b-csv", "t", "en", [], audience, 80.0, selection.audience, AT)
    assert selected("b-csv") == {NUMBERS[0], NUMBERS[5]}


def test_the_scratch_table_starts_empty_on_a_reused_connection(store):
    with transaction() as conn:
        load_csv(conn, "wa_id\n4915100000000\n")
    with transaction() as conn:
        assert load_csv(conn, "wa_id\n4915100000005\n").numbers == 1


def test_a_rerun_of_the_selection_adds_nothing(store):
    create("b-again")
    with transaction() as conn:
        assert audiences.materialise(conn, "b-again", Audience(), AT) == 0
    assert rows(broadcast_deliveries) == 7


def test_pending_counts_see_opt_outs_since_the_selection(store):
    create("b-late")
    with transaction() as conn:
        record_opt_out(conn, NUMBERS[9], "meta_preferences", None, AT)
        assert deliveries.pending_counts(conn, "b-late") == (7, 1)


def test_a_delivery_is_claimed_once_and_only_a_claimed_one_gets_an_outcome(store):
    create("b-claim")
    wa_id = NUMBERS[0]
    with transaction() as conn:
        assert not deliveries.finish(conn, "b-claim", wa_id, "sent", AT, "wamid.X")  # not claimed
        claimed = deliveries.claim(conn, "b-claim", wa_id, AT)
        assert claimed == deliveries.Claimed("b-claim", "promo_offer", "en_US", ("x",))
        assert deliveries.claim(conn, "b-claim", wa_id, AT) is None
        assert deliveries.claim(conn, "b-claim", NUMBERS[1], AT) is None  # opted out: no delivery
        assert deliveries.claim(conn, "b-unknown", wa_id, AT) is None
        assert deliveries.finish(conn, "b-claim", wa_id, "sent", AT, "wamid.X")
        assert not deliveries.finish(conn, "b-claim", wa_id, "failed", AT)  # outcomes are final


def test_the_report_follows_the_wamid_to_the_webhook_status(store):
    create("b-report")
    with transaction() as conn:
        for wa_id, wamid in [(NUMBERS[0], "wamid.A"), (NUMBERS[2], "wamid.B")]:
            deliveries.claim(conn, "b-report", wa_id, AT)
            deliveries.finish(conn, "b-report", wa_id, "sent", AT, wamid)
        deliveries.claim(conn, "b-report", NUMBERS[3], AT)  # interrupted
        status = {"status": "delivered", "rank": 2, "status_at": AT, "updated_at": AT}
        conn.execute(insert(message_statuses).values(wamid="wamid.A", **status))
        report = aggregate(load_rows(conn, "b-report"), 3)
    assert (report.sent, report.delivered, report.interrupted, report.pending) == (2, 1, 1, 4)
    assert report.skipped_opted_out == 3


# --- the command, without a Rasa server ---


def test_a_dry_run_prints_the_counts_and_writes_nothing(store, capsys):
    assert main(["broadcast", "--template", "promo_offer", "--language", "en_US", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "audience:             10 (all customers)" in out
    assert "would send:           7" in out
    assert "skipped as opted out: 3" in out
    assert rows(broadcasts) == rows(broadcast_deliveries) == 0


def test_a_dry_run_of_a_csv_audience_counts_unknown_numbers(store, tmp_path, capsys):
    path = tmp_path / "audience.csv"
    path.write_text("wa_id,name\n4915100000000,A\n4915100000001,B\n4915199999999,C\n")
    argv = ["broadcast", "--template", "t", "--language", "en", "--audience", str(path), "--dry-run"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "audience:             2 (customers in audience.csv (sha256" in out
    assert "not in customer store: 1 (never sent)" in out
    assert "would send:           1" in out
    assert rows(broadcasts) == 0


def test_a_csv_audience_selects_bsuid_customers_and_links_nothing(store, tmp_path, capsys):
    bsuid = "DE.7730551842193"
    with transaction() as conn:
        ensure_customer(conn, bsuid)
        record_opt_out(conn, "DE.999111", "text", None, AT)
    path = tmp_path / "audience.csv"
    # One row names two different customers: both are in the audience, and nothing links them.
    path.write_text(f"wa_id,user_id\n4915100000000,{bsuid}\n,DE.999111\n,ZZ.404\n")
    argv = ["broadcast", "--template", "t", "--language", "en", "--audience", str(path), "--dry-run"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "audience:             3 (" in out
    assert "not in customer store: 1 (never sent)" in out
    assert "would send:           2" in out
    assert "skipped as opted out: 1" in out
    with transaction() as conn:
        assert resolve(conn, bsuid) != resolve(conn, "4915100000000")


def test_a_bad_csv_sends_nothing_and_says_where(store, tmp_path, capsys):
    path = tmp_path / "audience.csv"
    path.write_text("wa_id\n4915100000000\n12\n")
    assert main(["broadcast", "--template", "t", "--language", "en", "--audience", str(path)]) == 1
    assert "line 3: invalid phone number" in capsys.readouterr().err
    assert rows(broadcasts) == 0


def test_without_rasa_the_broadcast_is_saved_for_a_resume_and_nothing_is_sent(store, monkeypatch, capsys):
    monkeypatch.setenv("RASA_PORT", str(_closed_port()))
    monkeypatch.setenv("RASA_AUTH_TOKEN", "t")
    argv = ["broadcast", "--template", "promo_offer", "--language", "en_US", "--tag", "vip", "--id", "b-1"]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert "broadcast b-1: 3 to send, 1 left out as opted out (customers tagged VIP)" in captured.out
    assert "resume with --id b-1" in captured.err
    assert selected("b-1") == VIP - OPTED_OUT
    # The same command again resumes the same broadcast and selects nobody new.
    assert main(argv) == 1
    assert "resuming broadcast b-1" in capsys.readouterr().out
    assert rows(broadcast_deliveries) == 3


def test_resuming_with_other_settings_is_refused(store, monkeypatch, capsys):
    monkeypatch.setenv("RASA_PORT", str(_closed_port()))
    create("b-2")
    assert main(["broadcast", "--id", "b-2", "--template", "other_offer"]) == 1
    assert "--template 'other_offer' (the broadcast has 'promo_offer')" in capsys.readouterr().err
    assert main(["broadcast", "--id", "b-2", "--tag", "VIP"]) == 1
    assert "audience 'customers tagged VIP' (the broadcast has 'all customers')" in capsys.readouterr().err


def test_a_dry_run_of_a_resume_counts_what_is_left(store, capsys):
    create("b-3")
    with transaction() as conn:
        record_opt_out(conn, NUMBERS[9], "meta_preferences", None, AT)
    assert main(["broadcast", "--id", "b-3", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would send:           6" in out
    assert "skipped as opted out: 1 (opted out since the selection)" in out


def test_a_new_broadcast_needs_a_template_and_a_language(store, capsys):
    assert main(["broadcast", "--template", "promo_offer"]) == 1
    assert "needs --template and --language" in capsys.readouterr().err


def test_report_of_an_unknown_broadcast_fails(store, capsys):
    assert main(["broadcast", "report", "nope"]) == 1


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

"""The plan and the arithmetic of `bench.load`, without servers."""

from __future__ import annotations

import pytest

from bench.load import Run, customers_needed, due_times, rates, round_robin, summary, table
from bench.stats import Attempt


def test_messages_are_due_at_the_rate_for_the_duration():
    assert due_times(4, 1.5) == [0, 0.25, 0.5, 0.75, 1.0, 1.25]
    assert len(due_times(40, 60)) == 2400


def test_each_customer_writes_once_per_period_and_there_is_always_one():
    assert customers_needed(10) == 50
    assert customers_needed(0.01) == 1


def test_the_balancer_alternates_between_replicas():
    assert round_robin(["a", "b"], 5) == ["a", "b", "a", "b", "a"]
    assert round_robin(["a"], 3) == ["a", "a", "a"]


def test_a_message_without_200_or_without_a_reply_is_lost_and_not_counted_as_done():
    attempts = (
        Attempt("1", 200, 0.1),
        Attempt("1", 200, 0.2),  # its reply never came
        Attempt("2", 500, 0.3),
        Attempt("3", 200, 0.4),
    )
    row = summary(Run(replicas=2, rate=4, seconds=2.0, attempts=attempts), {"1": 1, "3": 1})
    assert row["lost"] == {"non_200": 1, "missing_replies": 1, "total": 2}
    assert row["statuses"] == {"200": 3, "500": 1}
    assert row["throughput_per_s"] == 1.0
    assert row["latency_ms"]["max"] == pytest.approx(400)
    assert table([row]).splitlines()[1].split() == [
        "2",
        "4",
        "4",
        "1.0",
        "200",
        "360",
        "396",
        "400",
        "2",
        "0",
    ]


@pytest.mark.parametrize("text", ["", "10,-1", "0"])
def test_rates_must_be_positive(text):
    with pytest.raises(Exception, match="positive"):
        rates(text)

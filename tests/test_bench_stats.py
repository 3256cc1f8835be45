"""The benchmark's arithmetic (bench/stats.py): no bot, no network."""

from __future__ import annotations

import pytest

from bench.stats import (
    MEDIAN_TARGET_S,
    RATIO_TARGET,
    Attempt,
    LatencySummary,
    Losses,
    abba_schedule,
    losses,
    ms_per_message,
    per_second,
    percentile,
    ratio,
    targets,
)


def test_percentile_interpolates_between_ranks_like_numpy():
    values = [4.0, 1.0, 3.0, 2.0]  # unsorted on purpose
    assert percentile(values, 0) == 1.0
    assert percentile(values, 50) == 2.5
    assert percentile(values, 90) == pytest.approx(3.7)
    assert percentile(values, 100) == 4.0


def test_percentile_of_one_value_is_that_value():
    assert percentile([0.2], 99) == 0.2


@pytest.mark.parametrize("values, q", [([], 50), ([1.0], -1), ([1.0], 101)])
def test_percentile_refuses_nonsense(values, q):
    with pytest.raises(ValueError):
        percentile(values, q)


def test_latency_summary_of_one_to_a_hundred():
    summary = LatencySummary.of([float(n) for n in range(1, 101)])
    assert summary.count == 100
    assert summary.p50 == pytest.approx(50.5)
    assert summary.p90 == pytest.approx(90.1)
    assert summary.p99 == pytest.approx(99.01)
    assert summary.max == 100.0


def test_nothing_lost_when_every_200_has_its_reply():
    attempts = [Attempt("a", 200, 0.1), Attempt("a", 200, 0.1), Attempt("b", 200, 0.1)]
    assert losses(attempts, {"a": 2, "b": 1}) == Losses(non_200=0, missing_replies=0)


def test_non_200_and_no_answer_are_lost_and_need_no_reply():
    attempts = [Attempt("a", 500, 0.1), Attempt("a", 0, 60.0), Attempt("b", 503, 0.1)]
    assert losses(attempts, {}) == Losses(non_200=3, missing_replies=0)


def test_a_200_without_a_reply_is_lost():
    attempts = [Attempt("a", 200, 0.1), Attempt("a", 200, 0.1), Attempt("b", 200, 0.1)]
    lost = losses(attempts, {"a": 1})
    assert lost == Losses(non_200=0, missing_replies=2)
    assert lost.total == 2


def test_extra_replies_to_one_customer_do_not_cover_another():
    attempts = [Attempt("a", 200, 0.1), Attempt("b", 200, 0.1)]
    assert losses(attempts, {"a": 5}).missing_replies == 1


def test_per_second_and_ratio():
    assert per_second(90, 2.0) == 45.0
    assert ratio(45.0, 50.0) == pytest.approx(0.9)


@pytest.mark.parametrize("seconds", [0.0, -1.0])
def test_per_second_needs_elapsed_time(seconds):
    with pytest.raises(ValueError):
        per_second(10, seconds)


def test_ms_per_message_shares_cpu_seconds_between_messages():
    assert ms_per_message(1.5, 30) == pytest.approx(50.0)
    with pytest.raises(ValueError):
        ms_per_message(1.0, 0)


def test_ratio_needs_rest_throughput():
    with pytest.raises(ValueError):
        ratio(10.0, 0.0)


def test_targets_met_at_the_boundaries_that_count():
    met = targets(RATIO_TARGET, MEDIAN_TARGET_S - 0.001)
    assert list(met.values()) == [True, True]


def test_targets_missed_each_on_its_own():
    assert list(targets(RATIO_TARGET - 0.01, 0.1).values()) == [False, True]
    # The median target is strict: exactly 250 ms misses it.
    assert list(targets(1.0, MEDIAN_TARGET_S).values()) == [True, False]


def test_abba_schedule_mirrors_each_pair_and_shares_the_time_equally():
    schedule = abba_schedule("w", "r", 20.0, 5.0)
    assert [channel for channel, _ in schedule] == ["w", "r", "r", "w", "w", "r", "r", "w"]
    assert {seconds for _, seconds in schedule} == {5.0}


@pytest.mark.parametrize("seconds, segment_s, pairs", [(3.0, 5.0, 2), (12.0, 5.0, 2), (16.0, 5.0, 4)])
def test_abba_schedule_always_has_whole_mirrored_couples(seconds, segment_s, pairs):
    schedule = abba_schedule("w", "r", seconds, segment_s)
    assert len(schedule) == 2 * pairs
    for channel in ("w", "r"):
        assert sum(s for c, s in schedule if c == channel) == pytest.approx(seconds)


def test_abba_schedule_refuses_empty_durations():
    with pytest.raises(ValueError):
        abba_schedule("w", "r", 0.0, 5.0)

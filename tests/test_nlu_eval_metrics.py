"""Unit tests for the pure metric functions of bench/nlu_eval.py (no Rasa, no training)."""

from __future__ import annotations

import pytest

from bench.nlu_eval import (
    OVERALL,
    BinaryMetrics,
    Example,
    Prediction,
    binary_metrics,
    evaluate,
    format_metrics_table,
    intent_accuracy,
    is_opt_out_intent,
    is_twilio_keyword,
    leakage,
    metrics_by_language,
    normalise_text,
    opt_out_errors,
    other_intent_errors,
    targets_met,
)


def _ex(text: str, intent: str, lang: str = "en", hard: bool = False) -> Example:
    return Example(text=text, intent=intent, lang=lang, hard_negative=hard)


def _pred(example: Example, intent: str, confidence: float = 0.9) -> Prediction:
    return Prediction(example=example, intent=intent, confidence=confidence)


# ----------------------------------------------------------------- Twilio keyword baseline


@pytest.mark.parametrize(
    "text",
    ["STOP", "stop", " Stop \n", "StopAll", "unsubscribe", "CANCEL", "end", "Quit", "REVOKE", "optout"],
)
def test_twilio_keyword_matches_whole_trimmed_case_insensitive_message(text: str) -> None:
    assert is_twilio_keyword(text)


@pytest.mark.parametrize(
    "text",
    ["stop!", "STOP 🛑", "stop please", "opt-out", "opt out", "para", "cancel my order", "", "stpo"],
)
def test_twilio_keyword_rejects_anything_else(text: str) -> None:
    # Punctuation, emoji, extra words and typos all defeat the exact rule.
    assert not is_twilio_keyword(text)


def test_only_exact_opt_out_intent_counts_as_opt_out() -> None:
    assert is_opt_out_intent("opt_out")
    # The FallbackClassifier's low-confidence answer must never count as an opt-out.
    assert not is_opt_out_intent("nlu_fallback")
    assert not is_opt_out_intent("deny")
    assert not is_opt_out_intent(None)


# ------------------------------------------------------------------------ binary metrics


def test_binary_metrics_counts_and_rates() -> None:
    gold = [True, True, True, True, False, False, False, False, False]
    pred = [True, True, True, False, True, False, False, False, False]
    m = binary_metrics(gold, pred)
    assert (m.tp, m.fp, m.fn, m.tn) == (3, 1, 1, 4)
    assert m.count == 9
    assert m.positives == 4
    assert m.negatives == 5
    assert m.precision == pytest.approx(3 / 4)
    assert m.recall == pytest.approx(3 / 4)
    assert m.false_positive_rate == pytest.approx(1 / 5)


def test_binary_metrics_undefined_rates_are_none_not_zero() -> None:
    # No positive prediction and no negatives: precision and FPR cannot be measured.
    m = binary_metrics([True, True], [False, False])
    assert m.precision is None
    assert m.false_positive_rate is None
    assert m.recall == 0.0


def test_binary_metrics_rejects_length_mismatch() -> None:
    with pytest.raises(ValueError):
        binary_metrics([True], [True, False])


def test_as_dict_exposes_counts_and_rates() -> None:
    d = BinaryMetrics(tp=1, fp=0, fn=1, tn=2).as_dict()
    assert d["count"] == 4
    assert d["opt_out_examples"] == 2
    assert d["non_opt_out_examples"] == 2
    assert d["recall"] == 0.5
    assert d["false_positive_rate"] == 0.0
    assert d["precision"] == 1.0


def test_metrics_by_language_splits_and_keeps_overall() -> None:
    examples = [
        _ex("stop", "opt_out", "en"),
        _ex("cancel my order", "order_help", "en"),
        _ex("para", "opt_out", "es"),
        _ex("parada de bus", "out_of_scope", "es"),
    ]
    predicted = [True, True, False, False]
    result = metrics_by_language(examples, predicted, languages=("en", "es", "de"))
    assert list(result) == [OVERALL, "en", "es", "de"]
    assert (result[OVERALL].tp, result[OVERALL].fp, result[OVERALL].fn) == (1, 1, 1)
    assert result["en"].false_positive_rate == 1.0
    assert result["es"].recall == 0.0
    # A configured language with no data still gets an (empty) row.
    assert result["de"].count == 0


def test_metrics_by_language_adds_unlisted_languages() -> None:
    examples = [_ex("arrête", "opt_out", "fr"), _ex("stop", "opt_out", "xx")]
    result = metrics_by_language(examples, [True, True], languages=("fr",))
    assert list(result) == [OVERALL, "fr", "xx"]


def test_intent_accuracy() -> None:
    assert intent_accuracy(["a", "b", "c", "d"], ["a", "b", "x", "d"]) == pytest.approx(0.75)
    assert intent_accuracy([], []) is None


@pytest.mark.parametrize(
    ("tp", "fp", "fn", "tn", "expected"),
    [
        (98, 3, 2, 97, True),  # recall 0.98, FPR 0.03: exactly on the targets passes
        (97, 0, 3, 100, False),  # recall 0.97
        (100, 4, 0, 96, False),  # FPR 0.04
        (0, 0, 0, 10, False),  # no opt-out examples: recall undefined, cannot claim success
        (10, 0, 0, 0, False),  # no negatives: FPR undefined
    ],
)
def test_targets_met(tp: int, fp: int, fn: int, tn: int, expected: bool) -> None:
    assert targets_met(BinaryMetrics(tp=tp, fp=fp, fn=fn, tn=tn)) is expected


# -------------------------------------------------------------------------- error lists


def test_opt_out_errors_and_other_confusions() -> None:
    missed = _pred(_ex("band karo", "opt_out", "hi"), "nlu_fallback", 0.5)
    false_alarm = _pred(_ex("where is the bus stop", "out_of_scope"), "opt_out")
    correct = _pred(_ex("stop", "opt_out"), "opt_out")
    other = _pred(_ex("yes", "affirm"), "deny")
    missed_list, false_list = opt_out_errors([missed, false_alarm, correct, other])
    assert missed_list == [missed]
    assert false_list == [false_alarm]
    assert other_intent_errors([missed, false_alarm, correct, other]) == [other]


# ----------------------------------------------------------------------------- leakage


def test_normalise_text_drops_case_punctuation_and_emoji() -> None:
    assert normalise_text("  STOP!!! 🛑 ") == "stop"
    assert normalise_text("Opt-Out.") == "opt out"
    assert normalise_text("No  más\tmensajes") == "no más mensajes"


def test_leakage_separates_exact_and_normalised_matches() -> None:
    training = ["stop", "cancel my order", "no más mensajes"]
    holdout = ["stop", "STOP!!", "cancel my order please", " no más mensajes "]
    result = leakage(holdout, training)
    assert result["exact"] == ["stop", " no más mensajes "]
    assert result["normalised"] == ["STOP!!"]


# ------------------------------------------------------------------------------ report


def test_evaluate_builds_report_and_payload() -> None:
    predictions = [
        _pred(_ex("STOP", "opt_out", "en"), "opt_out"),
        _pred(_ex("stop please", "opt_out", "en"), "opt_out"),
        _pred(_ex("baja", "opt_out", "es"), "nlu_fallback", 0.5),
        _pred(_ex("cancel my order", "order_help", "en", hard=True), "opt_out"),
        _pred(_ex("hola", "greet", "es"), "greet"),
    ]
    report, payload = evaluate(predictions, training_texts=["stop", "hola!"])
    overall = payload["model"][OVERALL]
    assert (overall["tp"], overall["fp"], overall["fn"], overall["tn"]) == (2, 1, 1, 1)
    # The keyword baseline only catches the bare "STOP".
    baseline = payload["twilio_keyword_baseline"][OVERALL]
    assert (baseline["tp"], baseline["fn"], baseline["fp"]) == (1, 2, 0)
    assert payload["hard_negatives"] == {
        "count": 1,
        "model_false_opt_outs": 1,
        "baseline_false_opt_outs": 0,
    }
    assert payload["intent_accuracy"] == pytest.approx(3 / 5)
    assert payload["targets"]["met"] is False
    assert payload["leakage"] == {"exact": [], "normalised": ["STOP", "hola"]}
    assert [e["text"] for e in payload["missed_opt_outs"]] == ["baja"]
    assert [e["text"] for e in payload["false_opt_outs"]] == ["cancel my order"]
    assert "missed opt-outs (1)" in report
    assert "'baja'" in report


def test_format_metrics_table_has_one_row_per_key() -> None:
    m = {OVERALL: BinaryMetrics(1, 0, 0, 1), "en": BinaryMetrics(1, 0, 0, 1)}
    b = {OVERALL: BinaryMetrics(0, 0, 1, 1), "en": BinaryMetrics(0, 0, 1, 1)}
    table = format_metrics_table(m, b)
    rows = [line for line in table.splitlines() if line.startswith((OVERALL, "en "))]
    assert len(rows) == 2
    assert "n/a" in table  # baseline precision with no positive prediction

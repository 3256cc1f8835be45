"""Unit tests for the pure metric functions of bench/nlu_eval.py (no Rasa, no training)."""

from __future__ import annotations

import pytest

from bench.nlu_eval import (
    OVERALL,
    AnswerPrediction,
    BinaryMetrics,
    Example,
    Prediction,
    binary_metrics,
    confirmation_decision,
    confusion_by_language,
    confusion_table,
    decision_accuracy,
    evaluate,
    evaluate_confirmation,
    format_confusion_tables,
    format_cv_summary,
    format_metrics_table,
    intent_accuracy,
    is_opt_out_intent,
    is_twilio_keyword,
    leakage,
    metrics_by_language,
    normalise_text,
    opt_out_errors,
    other_intent_errors,
    read_as_yes,
    summarise_cv_report,
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
    # Without the two texts also in training: "stop please" found, "baja" missed, one false alarm.
    unseen = payload["without_leakage"]
    assert (unseen["tp"], unseen["fn"], unseen["fp"], unseen["tn"], unseen["met"]) == (1, 1, 1, 0, False)
    assert "without those 2: recall 0.500 (1 missed of 2), FPR 1.000 (1 of 1), targets MISSED" in report
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


# ------------------------------------------------------------- confirmation answers (issue 9)


def test_confusion_table_counts_every_gold_predicted_pair():
    table = confusion_table(["yes", "yes", "no", "no", "unclear"], ["yes", "unclear", "no", "yes", "unclear"])
    assert table == {
        "yes": {"yes": 1, "no": 0, "unclear": 1},
        "no": {"yes": 1, "no": 1, "unclear": 0},
        "unclear": {"yes": 0, "no": 0, "unclear": 1},
    }
    assert read_as_yes(table) == {"no": 1, "unclear": 0}
    assert decision_accuracy(table) == pytest.approx(3 / 5)


def test_confusion_table_keeps_unknown_labels_and_rejects_length_mismatch():
    table = confusion_table(["yes"], ["maybe"])
    assert table["yes"]["maybe"] == 1
    assert "maybe" in table
    with pytest.raises(ValueError):
        confusion_table(["yes"], [])


def test_empty_confusion_table_has_zero_rows_and_undefined_accuracy():
    table = confusion_table([], [])
    assert all(v == 0 for row in table.values() for v in row.values())
    assert decision_accuracy(table) is None
    assert read_as_yes(table) == {"no": 0, "unclear": 0}


def test_confusion_by_language_has_overall_and_every_language():
    result = confusion_by_language(
        ["yes", "no", "no"], ["yes", "yes", "no"], ["en", "de", "de"], ("en", "es", "de")
    )
    assert list(result) == [OVERALL, "en", "es", "de"]
    assert read_as_yes(result[OVERALL]) == {"no": 1, "unclear": 0}
    assert read_as_yes(result["de"]) == {"no": 1, "unclear": 0}
    assert sum(sum(r.values()) for r in result["es"].values()) == 0
    with pytest.raises(ValueError):
        confusion_by_language(["yes"], ["yes"], [])


def test_format_confusion_tables_prints_one_row_per_language_with_the_yes_errors():
    tables = confusion_by_language(["no", "yes"], ["yes", "yes"], ["en", "en"], ("en",))
    text = format_confusion_tables(tables)
    [row] = [line for line in text.splitlines() if line.startswith("en ")]
    # n=2, then y>y y>n y>u n>y n>n n>u u>y u>n u>u, accuracy, no>yes, unclear>yes
    assert row.split() == [
        "en",
        "2",
        "|",
        "1",
        "0",
        "0",
        "1",
        "0",
        "0",
        "0",
        "0",
        "0",
        "|",
        "0.500",
        "1",
        "0",
    ]


def _answer(text, gold, intent, confidence, lang="en"):
    example = Example(text=text, intent=gold, lang=lang)
    return AnswerPrediction(example, intent, confidence, confirmation_decision(intent, confidence))


def test_confirmation_decision_goes_through_the_forms_function():
    assert confirmation_decision("affirm", 1.0) == "yes"
    assert confirmation_decision("affirm", 0.5) == "unclear"  # unsure yes: ask again
    assert confirmation_decision("opt_out", 0.99) == "yes"
    assert confirmation_decision("want_marketing", 0.6) == "no"
    assert confirmation_decision("deny", 0.9) == "no"
    assert confirmation_decision("ask_offers", 0.9) == "unclear"  # a question: asked again
    assert confirmation_decision("nlu_fallback", 0.3) == "unclear"


def test_evaluate_confirmation_reports_no_answers_read_as_yes():
    answers = [
        _answer("yes", "yes", "affirm", 1.0),
        _answer("I want more offers", "no", "affirm", 0.93),  # the costly mistake
        _answer("no", "no", "deny", 0.99, "es"),
        _answer("hmm", "unclear", "nlu_fallback", 0.2, "de"),
        _answer("ok?", "unclear", "opt_out", 0.85, "de"),
        _answer("ja", "yes", "affirm", 0.7, "de"),  # unsure: asked again, not a yes
    ]
    report, payload = evaluate_confirmation(answers)
    assert payload["n_answers"] == 6
    assert payload["no_read_as_yes"] == 1
    assert payload["unclear_read_as_yes"] == 1
    assert payload["no_read_as_yes_target_met"] is False
    assert payload["confusion"]["de"]["yes"]["unclear"] == 1
    assert payload["decision_accuracy"] == pytest.approx(3 / 6)
    assert [e["text"] for e in payload["wrong_decisions"]] == ["I want more offers", "ok?", "ja"]
    assert "answers read as YES by mistake: 1 of 2 'no'" in report


# ----------------------------------------------------------------------- cross-validation


CV_REPORT = {
    "opt_out": {"precision": 0.99, "recall": 0.97, "f1-score": 0.98, "support": 700},
    "deny": {"precision": 0.9, "recall": 0.8, "f1-score": 0.847, "support": 100},
    "accuracy": 0.95,
    "macro avg": {"precision": 0.9, "recall": 0.9, "f1-score": 0.9, "support": 800},
    "weighted avg": {"precision": 0.9, "recall": 0.9, "f1-score": 0.9, "support": 800},
}


def test_summarise_cv_report_picks_opt_out_and_accuracy():
    summary = summarise_cv_report(CV_REPORT)
    assert (summary["precision"], summary["recall"], summary["f1"], summary["support"]) == (
        0.99,
        0.97,
        0.98,
        700,
    )
    assert summary["accuracy"] == 0.95
    assert summary["macro_f1"] == 0.9
    assert summary["per_intent_f1"] == {"opt_out": 0.98, "deny": 0.847}


def test_summarise_cv_report_tolerates_a_missing_intent():
    summary = summarise_cv_report({"accuracy": 0.5})
    assert summary["recall"] is None
    assert summary["per_intent_f1"] == {}


def test_format_cv_summary_mentions_the_key_numbers():
    text = format_cv_summary(summarise_cv_report(CV_REPORT))
    assert "5-fold" in text
    assert "recall 0.970" in text
    assert "accuracy 0.950" in text

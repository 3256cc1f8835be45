"""The training data and the evaluation sets stay apart: `data/nlu/spent_sets.yml` holds only texts
of the spent evaluation sets it names, and none of a set that was not folded: the publish gate's DEV
set v5 and the held-out v11 and v12 (each evaluated once, judging session 11's data). The counterfactual files
(`data/nlu/counterfactual_*.yml`, session 11), written after v11 and v12 by helpers who never opened
them, hold none of their texts either. (v13 was written after all of data/; the short phrases it
shares with older files are reported by bench/nlu_eval.py's leakage line, not checked here.)"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

from bench.nlu_eval import load_answers, load_holdout, load_training_texts, normalise_text
from bot import PROJECT_ROOT

SETS = PROJECT_ROOT / "bench" / "data"
SPENT = PROJECT_ROOT / "data" / "nlu" / "spent_sets.yml"
FOLDED = [
    "opt_out_dev.yml",
    "opt_out_dev_v2.yml",
    "opt_out_holdout.yml",
    *(f"opt_out_holdout_v{v}.yml" for v in (2, 3, 4, 6, 7, 8, 9, 10)),
]
NOT_FOLDED = ["v5", "v11", "v12"]
WRITTEN_AFTER_THE_FRESH_SETS = [SPENT, *sorted((PROJECT_ROOT / "data" / "nlu").glob("counterfactual_*.yml"))]


# Cached: each file is read once for all the (set, file) pairs below.
@cache
def _texts(path: Path) -> frozenset[str]:
    return frozenset(normalise_text(t) for t in load_training_texts(path))


@cache
def _kept_out(version: str) -> frozenset[str]:
    """The normalised texts of an opt-out set and its confirmation answers."""
    texts = {normalise_text(e.text) for e in load_holdout(SETS / f"opt_out_holdout_{version}.yml")}
    texts |= {
        normalise_text(e.text) for e in load_answers(SETS / f"confirmation_answers_holdout_{version}.yml")
    }
    return frozenset(texts)


@pytest.mark.parametrize("data", WRITTEN_AFTER_THE_FRESH_SETS, ids=lambda p: p.name)
@pytest.mark.parametrize("version", NOT_FOLDED)
def test_no_text_of_a_set_that_was_not_folded_is_in_the_data_written_after_it(version, data):
    # The count only: printing the shared texts would show a fresh set's lines to whoever reads the log.
    shared = len((_texts(data) & _kept_out(version)) - {""})
    assert shared == 0


def test_every_folded_text_comes_from_a_spent_set_under_its_gold_label_when_it_had_one():
    spent = {normalise_text(e.text): e.intent for name in FOLDED for e in load_holdout(SETS / name)}
    from rasa.shared.nlu.training_data.loading import load_data

    for message in load_data(str(SPENT)).intent_examples:
        gold = spent.get(normalise_text(message.get("text")))
        assert gold is not None, message.get("text")
        # `other` was labelled by hand with one of the domain's intents; an opt-out stays one.
        assert gold == "other" or gold == message.get("intent"), message.get("text")
        assert (gold == "opt_out") == (message.get("intent") == "opt_out"), message.get("text")

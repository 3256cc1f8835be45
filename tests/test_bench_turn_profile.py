"""bench/turn_profile.py's grouping of py-spy samples (no bot, no py-spy needed)."""

from __future__ import annotations

from pathlib import Path

from bench.turn_profile import OTHER, group_of, read_raw

SANIC = "handle_request (sanic/app.py:900)"
PROCESSOR = "handle_message (rasa/core/processor.py:160)"
TED = "predict_action_probabilities (rasa/core/policies/ted_policy.py:600)"
STATE_FEATURIZER = "featurize_trackers (rasa/core/featurizers/tracker_featurizers.py:300)"
STORE = "save (rasa/core/tracker_store.py:1200)"
EVENT = "as_dict (rasa/shared/core/events.py:400)"
SCHEMA = "iter_errors (jsonschema/validators.py:300)"
REMOTE = "run (rasa/core/actions/action.py:790)"


def test_a_sample_goes_to_the_first_group_one_of_its_frames_belongs_to():
    assert group_of([SANIC, PROCESSOR, TED, STATE_FEATURIZER]) == "policy featurizers"
    assert group_of([SANIC, PROCESSOR, TED]) == "policies (Memoization, Rule, TED)"
    assert group_of([SANIC, PROCESSOR, STORE, EVENT]) == "tracker store (load, save, serialise)"
    assert group_of([SANIC, PROCESSOR, REMOTE, SCHEMA]) == "action-result schema validation"
    assert group_of([SANIC, PROCESSOR, REMOTE]) == "actions (action server call, forms, responses)"
    assert group_of([SANIC, PROCESSOR, EVENT]) == "rest of Rasa's turn (processor, graph, tracker)"
    assert group_of([SANIC]) == OTHER


def test_py_spy_raw_output_is_summed_per_group(tmp_path: Path):
    raw = tmp_path / "raw.txt"
    idle_worker = "_bootstrap (threading.py:973);_worker (concurrent/futures/thread.py:81)"
    raw.write_text(
        f"{SANIC};{PROCESSOR};{TED} 7\n{SANIC};{PROCESSOR};{TED} 3\n{SANIC} 5\n{idle_worker} 40\n\n"
    )

    assert read_raw(raw) == {"policies (Memoization, Rule, TED)": 10, OTHER: 5}

"""Rasa 3.6 patches that remove repeated work from every turn, without changing what Rasa decides.

Applied by `apply()`, which bot/rasa_stores.py calls when Rasa builds a store: endpoints.yml names
its stores, so every Rasa process that serves conversations (`rasa run`, `rasa shell`, ...) builds
them before the first turn, in `rasa.core.agent.load_agent`, whose module has imported Rasa's
actions module (through `rasa.core.processor`) by then. Idempotent. A store built in a process
that has not loaded Rasa's actions module (a command exporting conversations, a test of the
stores) runs no action, so there is nothing to patch, and `apply()` leaves that module unloaded: it
loads TensorFlow, seconds of CPU.

The action-result validator. After every call to the action server, Rasa 3.6 checks the answer
with `jsonschema.validate(result, RemoteAction.action_response_format_spec())`
(rasa/core/actions/action.py, `RemoteAction._validate_action_result`). `jsonschema.validate` first
validates the schema itself against its meta-schema and builds a new validator each time. The
schema (`EVENTS_SCHEMA`: every event type Rasa knows) never changes within a process, so that work
is the same on every call; it cost most of an action turn's CPU (issue 11: a broadcast spent 84 ms
of Rasa CPU per message, 33 ms with the validator cached). Here the schema is checked and its
validator built once, on first use, and each answer is validated exactly as before: same checks,
same error (the best match, with Rasa's hint appended to its message).
"""

from __future__ import annotations

import functools
import sys
from typing import TYPE_CHECKING, Any

from jsonschema import exceptions, validators
from jsonschema.protocols import Validator
from rasa.shared.constants import DOCS_BASE_URL

if TYPE_CHECKING:
    from rasa.core.actions.action import RemoteAction

ACTIONS_MODULE = "rasa.core.actions.action"  # where RemoteAction lives


@functools.cache
def action_result_validator() -> Validator:
    """The validator of `RemoteAction.action_response_format_spec()`, built once per process."""
    from rasa.core.actions.action import RemoteAction

    schema = RemoteAction.action_response_format_spec()
    validator_class = validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


def validate_action_result(action: RemoteAction, result: dict[str, Any]) -> bool:
    """`RemoteAction._validate_action_result` with the cached validator (same result, same error)."""
    error = exceptions.best_match(action_result_validator().iter_errors(result))
    if error is None:
        return True
    error.message += (
        ". Failed to validate Action server response from API, "
        "make sure your response from the Action endpoint is valid. "
        "For more information about the format visit "
        f"{DOCS_BASE_URL}/custom-actions"
    )
    raise error


def apply() -> None:
    actions = sys.modules.get(ACTIONS_MODULE)
    if actions is None:
        return  # no agent in this process: no action will run (see the module docstring)
    # Rasa has no subclass of RemoteAction that changes the schema, so one cached validator serves all.
    actions.RemoteAction._validate_action_result = validate_action_result

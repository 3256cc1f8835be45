"""bot/rasa_patches.py through Rasa's own RemoteAction.run, against an action server on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace
from typing import Any

import jsonschema
import pytest
from aiohttp import web

from bot import PROJECT_ROOT
from tests.loopback import serving_post

# Rasa's actions module loads TensorFlow (~9 s of CPU, ~20 s on a busy machine), which no other test
# of `make fast` needs: `make test` runs these, `make fast` does not.
pytestmark = pytest.mark.slow

VALID = {"events": [{"event": "slot", "name": "already_opted_out", "value": False}], "responses": []}


@pytest.fixture(scope="module")
def rasa() -> SimpleNamespace:
    """Rasa's RemoteAction and what running one takes, with the patches applied (as building
    endpoints.yml's stores applies them in Rasa). Imported here, not when the file is collected: Rasa's actions
    module loads TensorFlow (~9 s of CPU), which no other test of `make fast` needs."""
    from rasa.core.actions.action import RemoteAction
    from rasa.core.channels.channel import CollectingOutputChannel
    from rasa.core.nlg import TemplatedNaturalLanguageGenerator
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import SlotSet
    from rasa.shared.core.trackers import DialogueStateTracker
    from rasa.utils.endpoints import EndpointConfig

    from bot import rasa_patches

    rasa_patches.apply()
    return SimpleNamespace(
        RemoteAction=RemoteAction,
        CollectingOutputChannel=CollectingOutputChannel,
        TemplatedNaturalLanguageGenerator=TemplatedNaturalLanguageGenerator,
        SlotSet=SlotSet,
        DialogueStateTracker=DialogueStateTracker,
        EndpointConfig=EndpointConfig,
        patches=rasa_patches,
        domain=Domain.load(PROJECT_ROOT / "domain.yml"),
    )


@pytest.fixture
async def action_server(rasa: SimpleNamespace) -> AsyncIterator[Callable[[dict[str, Any]], Any]]:
    """An action server that answers every call with the JSON it was last given."""
    answer: dict[str, Any] = {}

    async def webhook(request: web.Request) -> web.Response:
        return web.json_response(answer)

    async with serving_post(webhook) as url:

        def answering(result: dict[str, Any]) -> Any:
            answer.clear()
            answer.update(result)
            return rasa.EndpointConfig(url)

        yield answering


@pytest.fixture
def schema_checks(rasa: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every check of a schema against its meta-schema by the validator class of Rasa's schema."""
    validator_class = jsonschema.validators.validator_for(rasa.RemoteAction.action_response_format_spec())
    check_schema = validator_class.check_schema
    checked: list[dict[str, Any]] = []

    def counting(cls: type, schema: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        checked.append(schema)
        check_schema(schema, *args, **kwargs)

    monkeypatch.setattr(validator_class, "check_schema", classmethod(counting))
    rasa.patches.action_result_validator.cache_clear()
    return checked


async def run_action(rasa: SimpleNamespace, endpoint: Any) -> list[Any]:
    domain = rasa.domain
    tracker = rasa.DialogueStateTracker("16505551234", domain.slots)
    return await rasa.RemoteAction("action_check_opt_out", endpoint).run(
        rasa.CollectingOutputChannel(),
        rasa.TemplatedNaturalLanguageGenerator(domain.responses),
        tracker,
        domain,
    )


@pytest.mark.parametrize("store", ["tracker", "lock"])
def test_building_either_store_applies_the_patch(rasa, store, tmp_path, monkeypatch):
    from bot.rasa_stores import LockStoreFromEnv, SQLTrackerStoreFromEnv

    def unpatched(action: Any, result: dict[str, Any]) -> bool:
        raise AssertionError("the patch was not applied")

    monkeypatch.setattr(rasa.RemoteAction, "_validate_action_result", unpatched)
    monkeypatch.setenv("TRACKER_STORE_URL", f"sqlite:///{tmp_path / 'tracker.sqlite3'}")
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("SANIC_WORKERS", raising=False)
    if store == "tracker":
        SQLTrackerStoreFromEnv(domain=rasa.domain).engine.dispose()
    else:
        LockStoreFromEnv()

    assert rasa.RemoteAction._validate_action_result is rasa.patches.validate_action_result


def test_rasas_agent_has_loaded_the_actions_module_when_it_builds_the_stores(rasa):
    # `apply()` patches only a loaded actions module (it would load TensorFlow otherwise): this is
    # what makes it loaded in every process that runs actions. The agent module, which builds the
    # stores in `load_agent`, imports the processor at its top, and the processor the actions.
    from rasa.core import agent, processor

    assert agent.MessageProcessor is processor.MessageProcessor
    assert processor.Action.__module__ == rasa.patches.ACTIONS_MODULE


async def test_the_action_result_schema_is_checked_once_for_several_action_calls(
    rasa, action_server, schema_checks
):
    # Rasa's own method checks the schema on every call: this count would be 2.
    endpoint = action_server(VALID)
    first = await run_action(rasa, endpoint)
    second = await run_action(rasa, endpoint)

    assert first == second == [rasa.SlotSet("already_opted_out", False)]
    assert schema_checks == [rasa.RemoteAction.action_response_format_spec()]


@pytest.mark.parametrize(
    "result",
    [
        {"events": "not a list"},
        {"events": [{"event": "slot", "name": "already_opted_out", "timestamp": "not a number"}]},
        {"events": [], "responses": ["not an object"]},
    ],
)
async def test_an_invalid_action_result_is_refused_with_the_same_error_as_rasas(rasa, action_server, result):
    with pytest.raises(jsonschema.ValidationError) as refused:
        await run_action(rasa, action_server(result))

    with pytest.raises(jsonschema.ValidationError) as expected:
        jsonschema.validate(result, rasa.RemoteAction.action_response_format_spec())
    assert refused.value.message.startswith(expected.value.message)
    assert refused.value.message.endswith("/custom-actions")
    assert "Failed to validate Action server response" in refused.value.message
    assert list(refused.value.absolute_path) == list(expected.value.absolute_path)

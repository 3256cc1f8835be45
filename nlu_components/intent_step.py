"""What an intent component of ours that learns nothing shares: it runs after an intent classifier
and is built from its configuration alone (Rasa's GraphComponent boilerplate, written once)."""

from __future__ import annotations

from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier


class IntentStep(GraphComponent, IntentClassifier):
    """Base of OptOutSecondOpinion, OptOutInDoubt and StopKeyword: no training, no stored state.

    Subclasses register themselves (`DefaultV1Recipe.register(..., is_trainable=False)`), implement
    `process`, and override `get_default_config` and `__init__` when they take settings."""

    @classmethod
    def required_components(cls) -> list[type]:
        return [IntentClassifier]

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {}

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        self.config = dict(config or {})

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> IntentStep:
        return cls(config)

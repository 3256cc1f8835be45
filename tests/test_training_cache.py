"""config.yml gives every trained component the same settings in Rasa's fingerprint run as in its
training run, so that `rasa train` (and every publish) restores an unchanged component from
.rasa/cache instead of training it again.

Rasa 3.6 builds a component's cache key from its settings twice: the training run, which stores the
trained component, merges config.yml's settings over the component's defaults key by key inside a
mapping (`rasa.utils.common.override_defaults`); the fingerprint run, which decides what can be
restored, replaces a mapping whole (`{**defaults, **settings}` in `FingerprintComponent.run`). A
setting that names only part of a mapping (DIET's `hidden_layers_sizes: {text: [...]}`) gives two
different keys, and the component is never restored. Measured in docs/benchmarks.md ("Why every
publish retrained DIET").
"""

from __future__ import annotations

import copy

import pytest

from bot import PROJECT_ROOT

# Slow: the recipe imports Rasa's components, and TensorFlow with them (~10 s).
pytestmark = pytest.mark.slow


def _train_nodes() -> dict:
    """The training graph's nodes that are fingerprinted (not the inputs), as `rasa train` builds
    them from config.yml."""
    import rasa.shared.utils.io
    from rasa.engine.recipes.recipe import Recipe

    config = rasa.shared.utils.io.read_model_configuration(PROJECT_ROOT / "config.yml")
    recipe = Recipe.recipe_for_name(config.get("recipe"))
    schema = recipe.graph_config_for_recipe(config, {}).train_schema
    return {name: node for name, node in schema.nodes.items() if not node.is_input}


def _keys_differ(node) -> bool:
    """Whether the fingerprint run's settings for `node` differ from its training run's."""
    from rasa.utils.common import override_defaults

    defaults = node.uses.get_default_config()
    fingerprint_run = {**defaults, **node.config}
    training_run = override_defaults(defaults, node.config)
    return fingerprint_run != training_run


def test_every_trained_component_has_the_same_settings_in_both_runs():
    nodes = _train_nodes()
    assert "train_DIETClassifier5" in nodes  # the component this was found on
    assert [name for name, node in nodes.items() if _keys_differ(node)] == []


def test_a_mapping_named_in_part_would_give_two_keys():
    diet = copy.deepcopy(_train_nodes()["train_DIETClassifier5"])
    del diet.config["hidden_layers_sizes"]["label"]  # config.yml as it was until 2026-12-02
    assert _keys_differ(diet)

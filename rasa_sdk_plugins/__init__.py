"""rasa-sdk 3.6 imports a package of this name, when one is installed, to find its plugins
(`rasa_sdk/plugin.py`); ours refuses action server calls without the shared secret
(`bot.action_auth`), also when the action server is started as plain `rasa run actions`."""

from __future__ import annotations

import pluggy

from bot import action_auth


def init_hooks(manager: pluggy.PluginManager) -> None:
    if not manager.is_registered(action_auth):
        manager.register(action_auth)

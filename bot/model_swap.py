"""Rasa's `PUT /model` without stopping the server while the new model loads.

Rasa 3.6 loads the new model inside the request handler, synchronously, on the event loop that also
serves the webhooks: for as long as the load takes (a minute and more on a busy 2-core machine) the
server answers nothing, and WhatsApp's webhooks wait or time out. `load_models_off_the_loop` makes the
handler load the new agent in a worker thread, with its own event loop for the few awaits inside
(`rasa.core.agent.load_agent`); the server keeps answering with the old model meanwhile, and the
handler still swaps `app.ctx.agent` in one assignment when the new one is ready, exactly as before.
Errors (a missing or broken model file) come back as the same `ErrorResponse`s, and the old model
stays.
"""

from __future__ import annotations

import asyncio
from typing import Any


def load_models_off_the_loop() -> None:
    """Patch `rasa.server._load_agent`, which only the model routes call (`PUT /model`,
    `POST /model/test/intents`); the model loaded at start goes through another path."""
    import rasa.server

    load_on_the_loop = rasa.server._load_agent

    async def load_in_a_thread(*args: Any, **kwargs: Any) -> Any:
        # The coroutine is only created here; it runs, start to end, on the worker's own loop.
        return await asyncio.to_thread(asyncio.run, load_on_the_loop(*args, **kwargs))

    rasa.server._load_agent = load_in_a_thread

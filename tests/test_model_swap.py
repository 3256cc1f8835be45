"""`PUT /model` loads the new model in a worker thread: the server's loop keeps serving meanwhile."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import rasa.server

from bot.model_swap import load_models_off_the_loop


async def test_the_model_loads_in_another_thread_while_the_loop_keeps_answering(monkeypatch):
    async def slow_blocking_load(model_path: str | None = None, **_: object) -> tuple[str, int]:
        time.sleep(0.5)  # noqa: ASYNC251 -- what Rasa's synchronous `Agent.load_model` does to the loop
        return model_path or "", threading.get_ident()

    monkeypatch.setattr(rasa.server, "_load_agent", slow_blocking_load)
    load_models_off_the_loop()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    path, thread = await rasa.server._load_agent(model_path="/models/new.tar.gz")
    ticking.cancel()
    assert path == "/models/new.tar.gz"
    assert thread != threading.get_ident()
    assert ticks >= 20  # ~50 if the loop never waited for the load


async def test_a_failed_load_raises_what_rasa_raised(monkeypatch):
    async def broken_load(**_: object) -> None:
        raise rasa.server.ErrorResponse(400, "BadRequest", "Agent could not be loaded.")

    monkeypatch.setattr(rasa.server, "_load_agent", broken_load)
    load_models_off_the_loop()
    with pytest.raises(rasa.server.ErrorResponse):
        await rasa.server._load_agent(model_path="/nowhere.tar.gz")

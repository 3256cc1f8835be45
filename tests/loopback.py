"""A throwaway aiohttp server on a free loopback port, for tests that need something to call."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from aiohttp import web


@asynccontextmanager
async def serving_post(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]], path: str = "/webhook"
) -> AsyncIterator[str]:
    """Serve `handler` for POST `path` while the block runs; yields the URL to post to."""
    app = web.Application()
    app.router.add_post(path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}{path}"
    finally:
        await runner.cleanup()

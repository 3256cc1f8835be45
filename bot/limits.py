"""The largest request body the bot's Sanic servers (Rasa, the action server) accept.

Sanic's default is 100 MB, buffered in memory before any handler runs. A WhatsApp webhook payload
is at most 3 MB and an action server call (a tracker) far less, so 4 MiB is plenty; Sanic answers
413 to a larger body as soon as its Content-Length header arrives, before reading the body.
"""

from __future__ import annotations

from collections.abc import MutableMapping

REQUEST_MAX_SIZE = 4 * 1024 * 1024


def limit_sanic_requests(environ: MutableMapping[str, str]) -> None:
    """Sanic reads SANIC_* variables into an app's config when the app is built, so this runs
    before Rasa builds its app (`bot.rasa_server`); the action server's app gets the limit from
    `bot.action_auth`. An operator's SANIC_REQUEST_MAX_SIZE wins."""
    environ.setdefault("SANIC_REQUEST_MAX_SIZE", str(REQUEST_MAX_SIZE))

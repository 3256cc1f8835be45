"""The action server answers Rasa only: a rasa-sdk plugin that refuses calls without the shared secret.

An action writes consent (`action_opt_out` tags the sender), so a forged `POST /webhook` naming any
sender must fail. Rasa sends `Authorization: Bearer <ACTION_SERVER_TOKEN>` with every call
(endpoints.yml, `headers:`); a header rather than Rasa's `token:` query parameter, because the
query string is part of the URL that Sanic's access log writes. Every route but `GET /health` (for
load balancers) needs it: no header 401, a wrong one 403. rasa-sdk finds this plugin through the
`rasa_sdk_plugins` package (the only discovery rasa-sdk 3.6 has); `bot.action_server` registers it
as well, so a failed discovery cannot leave the server open.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping

import pluggy
from sanic import Sanic
from sanic.exceptions import PayloadTooLarge
from sanic.request import Request
from sanic.response import HTTPResponse, json

from bot.limits import REQUEST_MAX_SIZE
from bot.processes import ACTION_SERVER_TOKEN
from bot.settings import from_env

OPEN_PATHS = frozenset({"/health"})

hookimpl = pluggy.HookimplMarker("rasa_sdk")
logger = logging.getLogger(__name__)


def refusal(authorization: str | None, token: str) -> int | None:
    """The status to refuse a call with, or None to let it through."""
    if not authorization:
        return 401
    # Constant time: the comparison must not tell, by how long it takes, how much of a guess was right.
    if not hmac.compare_digest(authorization.encode(), f"Bearer {token}".encode()):
        return 403
    return None


def server_token(environ: Mapping[str, str] | None = None) -> str:
    token = from_env(environ).action_server_token
    if not token:
        # Refuse to start rather than serve an action server that anyone can call.
        raise SystemExit(
            f"{ACTION_SERVER_TOKEN} is not set: the action server would accept calls from anyone"
        )
    return token


@hookimpl
def attach_sanic_app_extensions(app: Sanic) -> None:
    token = server_token()
    if from_env().sanic_request_max_size is None:  # Sanic's default is 100 MB (`bot.limits`)
        app.config.REQUEST_MAX_SIZE = REQUEST_MAX_SIZE

    async def require_token(request: Request) -> HTTPResponse | None:
        if request.path in OPEN_PATHS and request.method in ("GET", "HEAD"):
            return None
        status = refusal(request.headers.get("Authorization"), token)
        if status is None:
            return None
        # Never the header itself: a wrong one may be a near miss, or the secret of another server.
        logger.warning("refused %s %s: %s", request.method, request.path, status)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
        return json({"error": "this server answers Rasa only"}, status=status, headers=headers)

    async def too_large(request: Request, exception: PayloadTooLarge) -> HTTPResponse:
        # rasa-sdk's catch-all handler would answer 500; the body was refused unread all the same.
        return json({"error": str(exception)}, status=413)

    app.register_middleware(require_token, "request")
    app.exception(PayloadTooLarge)(too_large)
    logger.info("calls need the %s shared secret", ACTION_SERVER_TOKEN)

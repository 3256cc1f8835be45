"""Async client for the Graph API `/<phone-number-id>/messages` endpoint.

One aiohttp session per event loop, shared by every send, with timeouts. Throttling (130429,
131056) and server errors are retried with exponential backoff; errors that a retry cannot fix
(undeliverable, outside the 24 h window, template problems, opted out of marketing) are raised at
once as `SendRejected` and logged with the masked customer.

https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import Any

import aiohttp

from bot.masking import mask_identifier

logger = logging.getLogger(__name__)

DEFAULT_API_URL = "https://graph.facebook.com/v21.0"

THROUGHPUT_LIMIT = 130429
TOO_MANY_TO_SAME_USER = 131056
MARKETING_OPTED_OUT = 131050
NEEDS_PHONE_NUMBER = 131062  # this message type cannot be sent to a BSUID
RETRYABLE_CODES = frozenset({THROUGHPUT_LIMIT, TOO_MANY_TO_SAME_USER})


def is_template_error(code: int | None) -> bool:
    return code is not None and 132000 <= code <= 132016


def is_retryable(http_status: int, code: int | None) -> bool:
    """Pure decision: retry throttling and server errors, nothing else."""
    return code in RETRYABLE_CODES or http_status >= 500 or http_status == 429


class SendError(Exception):
    def __init__(self, http_status: int, code: int | None, title: str, to: str) -> None:
        super().__init__(f"Graph API {http_status} error {code}: {title} (to {mask_identifier(to)})")
        self.http_status = http_status
        self.code = code
        self.title = title


class SendRejected(SendError):
    """Permanent: WhatsApp will not deliver this message; retrying would not help."""


class SendUnavailable(SendError):
    """Transient, but retries were exhausted: the caller should fail so the work is retried later."""


@dataclass(frozen=True, slots=True)
class Sent:
    message_id: str


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded: `attempts` in all, the waits doubling from `first_delay` up to `max_delay`, each
    shortened by up to `jitter` of itself so that the replies of many conversations throttled at
    the same moment (130429 during a broadcast) do not come back at the same moment either."""

    attempts: int = 4
    first_delay: float = 0.5
    max_delay: float = 8.0
    jitter: float = 0.25

    def delay(self, attempt: int, draw: float = 0.0) -> float:
        """Pure: the wait after failed attempt `attempt` (1, 2, ...); `draw` in [0, 1)."""
        return min(self.first_delay * 2 ** (attempt - 1), self.max_delay) * (1 - self.jitter * draw)


class CloudApiClient:
    def __init__(
        self,
        api_url: str,
        phone_number_id: str,
        access_token: str,
        retry: RetryPolicy | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.messages_url = f"{api_url.rstrip('/')}/{phone_number_id}/messages"
        self._headers = {"Authorization": f"Bearer {access_token}"}
        self._retry = retry or RetryPolicy()
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=min(timeout, 3.0))
        self._sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}

    def _session(self) -> aiohttp.ClientSession:
        # A session is bound to the loop that made it; Rasa may run more than one loop over a
        # process's life (tests, reloads), so keep one per loop rather than one per client.
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None or session.closed:
            session = aiohttp.ClientSession(
                timeout=self._timeout,
                headers=self._headers,
                connector=aiohttp.TCPConnector(limit=100),
            )
            self._sessions[loop] = session
        return session

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        session = self._sessions.pop(loop, None)
        if session is not None:
            await session.close()

    async def send(self, body: dict[str, Any]) -> Sent:
        to = str(body.get("to") or body.get("recipient") or "")
        attempt = 1
        while True:
            try:
                status, answer = await self._post(body)
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                status, answer = 599, {"error": {"message": f"{type(exc).__name__}: {exc}"}}
            if 200 <= status < 300:
                return Sent(message_id=_message_id(answer))
            code, title = _error(answer)
            if not is_retryable(status, code):
                logger.warning("WhatsApp refused a message to %s: %s %s", mask_identifier(to), code, title)
                raise SendRejected(status, code, title, to)
            if attempt >= self._retry.attempts:
                logger.error(
                    "WhatsApp send to %s failed after %d attempts: %s %s",
                    mask_identifier(to),
                    attempt,
                    code,
                    title,
                )
                raise SendUnavailable(status, code, title, to)
            delay = self._retry.delay(attempt, random.random())
            logger.info("WhatsApp send throttled or failing (%s %s), retry in %.1fs", code, title, delay)
            await asyncio.sleep(delay)
            attempt += 1

    async def _post(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        async with self._session().post(self.messages_url, json=body) as response:
            try:
                answer = await response.json(content_type=None)
            except ValueError:
                answer = {}
            return response.status, answer if isinstance(answer, dict) else {}


def _message_id(answer: dict[str, Any]) -> str:
    messages = answer.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[0], dict):
        return str(messages[0].get("id", ""))
    return ""


def _error(answer: dict[str, Any]) -> tuple[int | None, str]:
    error = answer.get("error")
    if not isinstance(error, dict):
        return None, "no error body"
    code = error.get("code")
    return (code if isinstance(code, int) else None), str(error.get("message") or error.get("title") or "")

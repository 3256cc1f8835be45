"""A real Sanic app with the WhatsApp channel registered the way Rasa registers it.

Rasa's agent is replaced by `RecordingAgent`, which records each turn and answers through the
channel's real output channel (to the local fake Graph API), so that the connector is tested on
its own; tests with the real Rasa server live in test_end_to_end*.py.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from rasa.core.channels.channel import UserMessage, register
from sanic import Sanic

from bot.opt_out_link.settings import LinkSettings
from bot.store.identities import ensure
from bot.whatsapp.channel import WhatsAppInput
from bot.whatsapp.config import WhatsAppConfig
from bot.whatsapp.signature import HEADER, sign

APP_SECRET = "test-app-secret"
VERIFY_TOKEN = "test-verify-token"
WEBHOOK = "/webhooks/whatsapp/webhook"


@dataclass
class RecordingAgent:
    messages: list[UserMessage] = field(default_factory=list)
    fail_next: int = 0
    delay: float = 0.0

    async def handle_message(self, message: UserMessage) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_next:
            self.fail_next -= 1
            raise RuntimeError("simulated Rasa failure")
        self.messages.append(message)
        await message.output_channel.send_text_message(message.sender_id, f"echo: {message.text}")


def make_app(
    api_url: str, *, link: LinkSettings | None = None, **settings: Any
) -> tuple[Sanic, RecordingAgent]:
    """`settings` override credentials.yml's whatsapp section; `link` the opt-out link's settings
    (None: from the environment, as in production)."""
    config = WhatsAppConfig.load(
        {
            "verify_token": VERIFY_TOKEN,
            "app_secret": APP_SECRET,
            "access_token": "test-access-token",
            "phone_number_id": "106540352242922",
            "api_url": api_url,
            **settings,
        },
        environ={},
    )
    app = Sanic(f"test_{uuid.uuid4().hex}")
    agent = RecordingAgent()
    app.ctx.agent = agent
    channel = WhatsAppInput(config, link)
    app.ctx.whatsapp = channel  # tests look at its status writer (channel.statuses)
    register([channel], app, route="/webhooks/")
    return app, agent


def signed(payload: Any, secret: str = APP_SECRET) -> tuple[bytes, dict[str, str]]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return body, {HEADER: sign(body, secret), "Content-Type": "application/json"}


async def post(app: Sanic, payload: Any, headers: dict[str, str] | None = None) -> Any:
    body, signed_headers = signed(payload)
    _, response = await app.asgi_client.post(
        WEBHOOK, content=body, headers=signed_headers if headers is None else headers
    )
    return response


def by(who: str):
    """`inbox.claim`'s sender: the customer with this identifier (created if new)."""
    return lambda conn: ensure(conn, who)[0]

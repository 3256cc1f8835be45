"""The WhatsApp simulator's backend: a customer's taps and texts become real signed webhooks.

The page never talks to Rasa. It asks this backend, which
- builds the webhook body exactly as Meta would (`bot.whatsapp.meta_payloads`), signs it with the
  app secret and POSTs it to the Rasa server's WhatsApp webhook;
- reads what the bot sent from the local Graph API stand-in (`GET /_fake/sent`, filtered by
  recipient) and answers each new message with `delivered` and `read` statuses, as a phone would;
- keeps each customer's timeline in memory (the stand-in keeps the bot's side too; the customer's
  side is lost when the dashboard restarts).

A simulated customer is a phone number, or (the "username customer, phone hidden" switch) a
business-scoped user ID (BSUID) and a username: WhatsApp then withholds the number, so the
webhooks carry `contacts[].user_id`, `profile.username` and `messages[].from_user_id` and no
`wa_id` / `from` at all, and the bot answers with `recipient` instead of `to`.

It only runs when the bot itself sends to the stand-in (`settings_from_env`), so nothing the
simulator makes the bot say can reach a real phone.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from bot.broadcast.template import template_message
from bot.dashboard.bubbles import TEMPLATES_DIR, load_template, outbound_bubble
from bot.db import run_sync, transaction
from bot.settings import from_env
from bot.store.identifiers import BSUID, Identifier
from bot.store.identities import Address
from bot.store.marketing_consent import may_send_marketing
from bot.store.phone_numbers import normalise_wa_id
from bot.whatsapp import meta_payloads as meta
from bot.whatsapp.outbound import addressed
from bot.whatsapp.signature import HEADER, sign

logger = logging.getLogger(__name__)

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# A turn includes Rasa's model and the action server: slow on a cold start.
WEBHOOK_TIMEOUT = aiohttp.ClientTimeout(total=60)
QUICK_TIMEOUT = aiohttp.ClientTimeout(total=5)
TEXT_LIMIT = 4096  # what WhatsApp lets a customer send
NAME_LIMIT = 256
PROMO_TEMPLATE = "promo_offer"
# A WhatsApp username: 3-35 of a-z, 0-9, '.', '_' (Meta compares them case-insensitively).
_USERNAME = re.compile(r"[a-z0-9._]{3,35}")


class SimulatorUnavailable(RuntimeError):
    """Why the simulator is off; shown on its page."""


@dataclass(frozen=True, slots=True)
class SimulatorSettings:
    webhook_url: str  # the Rasa server's /webhooks/whatsapp/webhook
    app_secret: str
    stand_in_url: str  # the local Graph API stand-in, e.g. http://127.0.0.1:5081
    api_url: str  # WHATSAPP_API_URL: where the bot sends, under the stand-in
    access_token: str
    phone_number_id: str


def settings_from_env(
    environ: Mapping[str, str] | None, stand_in_url: str, rasa_url: str
) -> SimulatorSettings:
    """The simulator's settings, or SimulatorUnavailable unless the bot is wired to the stand-in."""
    stand_in_url = stand_in_url.rstrip("/")
    if urlsplit(stand_in_url).hostname not in LOOPBACK_HOSTS:
        raise SimulatorUnavailable(f"the Graph API stand-in must be on loopback, not {stand_in_url}")
    settings = from_env(environ)
    api_url = settings.whatsapp_api_url
    if not api_url.startswith(stand_in_url + "/"):
        raise SimulatorUnavailable(
            "the bot sends to WhatsApp, not to the local stand-in (WHATSAPP_API_URL is not under "
            f"{stand_in_url}): messages would reach real phones"
        )
    missing = [
        variable
        for variable, value in (
            ("WHATSAPP_APP_SECRET", settings.whatsapp_app_secret),
            ("WHATSAPP_ACCESS_TOKEN", settings.whatsapp_access_token),
            ("WHATSAPP_PHONE_NUMBER_ID", settings.whatsapp_phone_number_id),
        )
        if not value
    ]
    if missing:
        raise SimulatorUnavailable(f"{', '.join(missing)} not set")
    return SimulatorSettings(
        webhook_url=f"{rasa_url.rstrip('/')}/webhooks/whatsapp/webhook",
        app_secret=settings.whatsapp_app_secret,
        stand_in_url=stand_in_url,
        api_url=api_url.rstrip("/"),
        access_token=settings.whatsapp_access_token,
        phone_number_id=settings.whatsapp_phone_number_id,
    )


# --- pure: who the customer is, what they did -> webhook body and bubble ------------------------


@dataclass(frozen=True, slots=True)
class SimulatedCustomer:
    """A phone customer (`wa_id`), or a username customer whose number WhatsApp hides (`user_id`,
    a BSUID, and `username`; `wa_id` None)."""

    wa_id: str | None = None
    user_id: str | None = None
    username: str | None = None

    @property
    def id(self) -> str:
        """The identifier the customer is known by here: the key of their timeline."""
        return self.user_id or self.wa_id or ""

    @property
    def address(self) -> Address:
        """Where the business sends to them: `to` their number, else `recipient` their BSUID."""
        return Address("to", self.wa_id) if self.wa_id else Address("recipient", self.id)


def simulated_customer(fields: Mapping[str, Any]) -> SimulatedCustomer:
    """The customer a request names: `user_id` (with an optional `username`) for a username
    customer, else `wa_id`. ValueError for a malformed one."""
    user_id = str(fields.get("user_id") or "").strip()
    if not user_id:
        return SimulatedCustomer(wa_id=normalise_wa_id(str(fields.get("wa_id") or "")))
    Identifier(BSUID, user_id)  # ValueError unless a BSUID as WhatsApp sends it
    username = str(fields.get("username") or "").strip().removeprefix("@").lower()
    if username and not _USERNAME.fullmatch(username):
        raise ValueError("a username has 3-35 letters, digits, '.' or '_'")
    return SimulatedCustomer(user_id=user_id, username=username or None)


def _field(action: Mapping[str, Any], name: str, limit: int = TEXT_LIMIT) -> str:
    value = str(action.get(name) or "").strip()
    if not value:
        raise ValueError(f"{name} is required")
    if len(value) > limit:
        raise ValueError(f"{name} is longer than {limit} characters")
    return value


def customer_message(
    customer: SimulatedCustomer,
    name: str,
    action: Mapping[str, Any],
    phone_number_id: str = meta.PHONE_NUMBER_ID,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The webhook body Meta would send for this action, and the customer's bubble.

    Actions: {"type": "text", "text"}, {"type": "button_reply" | "list_reply", "id", "title"},
    {"type": "quick_reply", "payload", "text"}; "context" is the wamid of the message tapped.
    Raises ValueError for anything else.
    """
    kind = action.get("type")
    wa_id = customer.wa_id
    # Sent to the bot's own number: the bot ignores webhooks for any other.
    options: dict[str, Any] = {"name": name[:NAME_LIMIT], "phone_number_id": phone_number_id}
    if customer.user_id:
        options.update(user_id=customer.user_id, username=customer.username)
    if action.get("context"):
        options["context_id"] = str(action["context"])
    if kind == "text":
        text = _field(action, "text")
        return meta.text(wa_id, text, **options), {"kind": "text", "text": text}
    if kind in ("button_reply", "list_reply"):
        reply_id, title = _field(action, "id", 256), _field(action, "title", 100)
        build = meta.button_reply if kind == "button_reply" else meta.list_reply
        return build(wa_id, reply_id, title, **options), {"kind": "tap", "text": title}
    if kind == "quick_reply":
        payload, label = _field(action, "payload", 256), _field(action, "text", 100)
        return meta.quick_reply(wa_id, payload, label, **options), {"kind": "tap", "text": label}
    raise ValueError(f"unknown action type {kind!r}")


def message_id(payload: dict[str, Any]) -> str:
    return payload["entry"][0]["changes"][0]["value"]["messages"][0]["id"]


def read_receipts(
    records: list[dict[str, Any]],
    at: int,
    phone_number_id: str = meta.PHONE_NUMBER_ID,
    customer: SimulatedCustomer | None = None,
) -> dict[str, Any]:
    """One `statuses` webhook: each message delivered, then read (as the phone reports them).
    A message sent to a username customer's BSUID is reported with `recipient_user_id` and a
    `contacts` entry without the number, as Meta does when it withholds it."""
    statuses = []
    for record in records:
        for status in ("delivered", "read"):
            raw = {"id": record["id"], "status": status, "timestamp": str(at)}
            if "to" in record["body"]:
                raw["recipient_id"] = record["body"]["to"]
            else:
                raw["recipient_user_id"] = record["body"]["recipient"]
            if record["body"].get("biz_opaque_callback_data"):
                raw["biz_opaque_callback_data"] = record["body"]["biz_opaque_callback_data"]
            statuses.append(raw)
    value: dict[str, Any] = {"statuses": statuses}
    if customer is not None and customer.user_id:
        value["contacts"] = [meta.contact(None, customer.user_id, None, None, customer.username)]
    return meta.notification(value, phone_number_id=phone_number_id)


def promo_body(customer: SimulatedCustomer, definition: dict[str, Any] | None) -> dict[str, Any]:
    """The promo template as a broadcast sends it, with the template's own example values."""
    definition = definition or {}
    examples = [
        str(value)
        for component in definition.get("components", [])
        if str(component.get("type", "")).upper() == "BODY"
        for value in ((component.get("example") or {}).get("body_text") or [[]])[0]
    ]
    body = template_message(
        customer.id,
        str(definition.get("name", PROMO_TEMPLATE)),
        str(definition.get("language", "en_US")),
        examples,
        broadcast_id="simulator",
    )
    return addressed(body, customer.address)


# --- the backend ---------------------------------------------------------------------------------


@dataclass
class Entry:
    id: str
    direction: str  # in (the customer) | out (the bot) | note (the simulator explains something)
    at: str
    bubble: dict[str, Any]
    status: str = ""  # for `in`: sending | delivered | failed
    detail: str = ""


@dataclass
class Conversation:
    entries: list[Entry] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)  # wamids of the bot's messages already shown
    # One customer's messages go one at a time, in order, as on a phone.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Bumped on every change. The page draws no answer older than one it has drawn: a poll that
    # started while a message was in flight can arrive after that message's own answer.
    version: int = 0

    def add(self, entry: Entry) -> None:
        self.entries.append(entry)
        self.version += 1

    def settle(self, entry: Entry, status: str, detail: str) -> None:
        entry.status, entry.detail = status, detail
        self.version += 1

    def snapshot(self) -> dict[str, Any]:
        return {"version": self.version, "entries": [asdict(entry) for entry in self.entries]}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


class Simulator:
    def __init__(
        self, settings: SimulatorSettings, session: aiohttp.ClientSession, templates_dir: Path = TEMPLATES_DIR
    ) -> None:
        self.settings = settings
        self.session = session
        self.templates_dir = templates_dir
        self.conversations: dict[str, Conversation] = {}

    def _conversation(self, customer: SimulatedCustomer) -> Conversation:
        return self.conversations.setdefault(customer.id, Conversation())

    async def timeline(self, customer: SimulatedCustomer) -> dict[str, Any]:
        """The conversation so far, with anything new from the bot. While a message of this customer
        is in flight, the timeline as it stands (its bubble shows a clock)."""
        conversation = self._conversation(customer)
        if not conversation.lock.locked():
            async with conversation.lock:
                await self._collect(customer, conversation)
        return conversation.snapshot()

    async def send(self, customer: SimulatedCustomer, name: str, action: Mapping[str, Any]) -> dict[str, Any]:
        payload, bubble = customer_message(customer, name, action, self.settings.phone_number_id)
        conversation = self._conversation(customer)
        async with conversation.lock:
            entry = Entry(message_id(payload), "in", _now(), bubble, status="sending")
            conversation.add(entry)
            conversation.settle(entry, *await self._post_webhook(payload))
            await self._collect(customer, conversation)
        return conversation.snapshot()

    async def send_promo(self, customer: SimulatedCustomer) -> dict[str, Any]:
        """Send the marketing template as the business would, unless the customer opted out."""
        conversation = self._conversation(customer)
        async with conversation.lock:
            if not await run_sync(_may_send_marketing, customer.id):
                note = (
                    "Promo not sent: this customer opted out or asked to stop and has not confirmed"
                    " (bot.store.marketing_consent.may_send_marketing said no)."
                )
                conversation.add(
                    Entry(f"note-{time.time_ns()}", "note", _now(), {"kind": "text", "text": note})
                )
            else:
                body = promo_body(customer, load_template(PROMO_TEMPLATE, self.templates_dir))
                problem = await self._post_message(body)
                if problem:
                    conversation.add(
                        Entry(f"note-{time.time_ns()}", "note", _now(), {"kind": "text", "text": problem})
                    )
            await self._collect(customer, conversation)
        return conversation.snapshot()

    async def bot_online(self) -> bool:
        """Whether the Rasa server answers on its WhatsApp channel (it takes a while to load a model)."""
        health = self.settings.webhook_url.removesuffix("webhook")
        try:
            async with self.session.get(health, timeout=QUICK_TIMEOUT) as response:
                return response.status == 200
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return False

    async def _post_webhook(self, payload: dict[str, Any]) -> tuple[str, str]:
        """(status, detail) of one signed webhook POST."""
        body = json.dumps(payload).encode()
        headers = {HEADER: sign(body, self.settings.app_secret), "Content-Type": "application/json"}
        try:
            async with self.session.post(
                self.settings.webhook_url, data=body, headers=headers, timeout=WEBHOOK_TIMEOUT
            ) as response:
                if response.status == 200:
                    return "delivered", ""
                return (
                    "failed",
                    f"the bot's webhook answered {response.status}: {(await response.text())[:200]}",
                )
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:
            logger.warning("webhook POST to the bot failed: %r", error)
            return "failed", "the bot did not answer (is Rasa still loading its model?)"

    async def _post_message(self, body: dict[str, Any]) -> str:
        """POST a message to the stand-in as the business; a problem to show, or ''."""
        url = f"{self.settings.api_url}/{self.settings.phone_number_id}/messages"
        headers = {"Authorization": f"Bearer {self.settings.access_token}"}
        try:
            async with self.session.post(url, json=body, headers=headers, timeout=QUICK_TIMEOUT) as response:
                if response.status == 200:
                    return ""
                return f"The Graph API stand-in refused the promo ({response.status})."
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:
            logger.warning("promo POST to the stand-in failed: %r", error)
            return "The Graph API stand-in is not reachable."

    async def _collect(self, customer: SimulatedCustomer, conversation: Conversation) -> None:
        """Append the bot's new messages to this customer and report them delivered and read."""
        try:
            async with self.session.get(
                f"{self.settings.stand_in_url}/_fake/sent", timeout=QUICK_TIMEOUT
            ) as response:
                response.raise_for_status()
                records = await response.json()
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as error:
            logger.warning("could not read the Graph API stand-in: %r", error)
            return
        address = customer.address
        new = [
            r
            for r in records
            if r["body"].get(address.field) == address.value and r["id"] not in conversation.seen
        ]
        for record in new:
            conversation.seen.add(record["id"])
            bubble = outbound_bubble(record["body"], self.templates_dir)
            conversation.add(Entry(record["id"], "out", _now(), bubble))
        if new:
            status, detail = await self._post_webhook(
                read_receipts(new, int(time.time()), self.settings.phone_number_id, customer)
            )
            if status != "delivered":
                logger.warning("read receipts were not accepted: %s", detail)


def _may_send_marketing(who: str) -> bool:
    with transaction() as conn:
        return may_send_marketing(conn, who)

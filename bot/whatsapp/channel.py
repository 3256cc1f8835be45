"""Rasa channel for the WhatsApp Cloud API: `bot.whatsapp.channel.WhatsAppInput` in credentials.yml.

Routes (channel name `whatsapp`):
- GET  /webhooks/whatsapp/          health
- GET  /webhooks/whatsapp/webhook   Meta's subscription handshake
- POST /webhooks/whatsapp/webhook   notifications: messages, statuses, user_preferences
- GET/POST /webhooks/whatsapp/opt-out/<token>   the opt-out link's page (bot/opt_out_link)

A POST is answered 200 only when everything in it has been handled. Anything that must be tried
again (database down, Rasa failed, a copy still in flight) gets a non-200 so WhatsApp redelivers;
dedupe makes the redelivery safe. An event whose sender has no usable identifier can never be
processed, so retrying it is pointless: it is acknowledged (200), logged and counted per reason
(the health check shows the counts).

Rasa's sender id is the customer key (bot/store/identities.py), never a phone number: a
conversation survives a number change, a BSUID change and a merge. Sending, the output channel
looks the key up: an active phone number is addressed with `to`, otherwise the BSUID with
`recipient` (never both: `to` would win). Error 131062 (this message type needs a phone number)
is retried once with `to` when the customer has a number, and otherwise that one message is
dropped and logged; the turn goes on.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.broadcast import deliveries
from bot.business import business_name
from bot.contract import CHANNEL_NAME, MessageKind, Metadata, retry_reason, tracker_store_failed, watch_turn
from bot.db import run_soon, run_sync, transaction
from bot.masking import mask_identifier, mask_message_id, mask_phone
from bot.opt_out_link import routes as opt_out_link
from bot.opt_out_link.settings import LinkSettings
from bot.store.identities import Address, address_of, phone_of, resolve
from bot.whatsapp import inbox, signals
from bot.whatsapp.cloud_api import NEEDS_PHONE_NUMBER, CloudApiClient, SendRejected
from bot.whatsapp.config import WhatsAppConfig
from bot.whatsapp.inbound import (
    ButtonReply,
    InboundMessage,
    ListReply,
    MalformedWebhook,
    OtherMessage,
    QuickReply,
    TextMessage,
    WebhookBatch,
    parse_webhook,
    split_by_number,
)
from bot.whatsapp.outbound import (
    Button,
    addressed,
    button_messages,
    custom_message,
    image_message,
    text_messages,
)
from bot.whatsapp.rasa_input import ButtonPayloads, QuickReplyTable, rasa_text
from bot.whatsapp.signature import HEADER, SignatureCheck, check_signature
from bot.whatsapp.status_batches import StatusWriter
from bot.whatsapp.unsupported import UnsupportedReplies, known_language

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 4 * 1024 * 1024  # Meta sends at most 3 MB


class TurnMustBeRetried(RuntimeError):
    """Raised out of Rasa's turn so the tracker is not saved and the webhook is retried."""


class WhatsAppOutput(OutputChannel):
    def __init__(self, client: CloudApiClient | None, addresses: dict[str, Address] | None = None) -> None:
        self.client = client
        # Recipient -> address already known: the inbound message's channel reads its sender's
        # address in the claim's transaction, so the turn's replies need no transaction of their own.
        self.addresses = dict(addresses or {})

    @classmethod
    def name(cls) -> str:
        return CHANNEL_NAME

    async def _send(self, recipient_id: str, bodies: list[dict[str, Any]]) -> None:
        """`recipient_id` is Rasa's sender id: the customer key (or any identifier of theirs)."""
        client = self.client
        if client is None:
            logger.error("cannot send to WhatsApp: set WHATSAPP_ACCESS_TOKEN and WHATSAPP_PHONE_NUMBER_ID")
            return
        if tracker_store_failed():
            # The turn runs on an empty conversation (see _deliver): its answer would be wrong.
            raise TurnMustBeRetried("the tracker store failed during this turn")
        address = self.addresses.get(recipient_id) or await run_sync(address_for, recipient_id)
        if address is None:
            logger.error(
                "no WhatsApp address for conversation %s; nothing sent", mask_identifier(recipient_id)
            )
            return
        for body in bodies:
            await self._send_one(client, recipient_id, addressed(body, address))

    async def _send_one(self, client: CloudApiClient, recipient_id: str, body: dict[str, Any]) -> None:
        try:
            await client.send(body)
        except SendRejected as error:
            if error.code != NEEDS_PHONE_NUMBER or "recipient" not in body:
                raise
            phone = await run_sync(phone_for, recipient_id)
            if phone is None:
                # Nothing else reaches them with this message type; the rest of the turn goes on.
                logger.warning(
                    "dropped a %s message to %s: WhatsApp needs a phone number for it (131062)",
                    body.get("type"),
                    mask_identifier(str(body["recipient"])),
                )
                return
            await client.send(addressed(body, Address("to", phone)))

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        await self._send(recipient_id, text_messages(recipient_id, text))

    async def send_text_with_buttons(
        self, recipient_id: str, text: str, buttons: list[dict[str, Any]], **kwargs: Any
    ) -> None:
        choices = [Button(title=str(b.get("title", "")), payload=str(b.get("payload", ""))) for b in buttons]
        await self._send(recipient_id, button_messages(recipient_id, text, choices))

    async def send_quick_replies(
        self, recipient_id: str, text: str, quick_replies: list[dict[str, Any]], **kwargs: Any
    ) -> None:
        await self.send_text_with_buttons(recipient_id, text, quick_replies)

    async def send_image_url(self, recipient_id: str, image: str, **kwargs: Any) -> None:
        await self._send(recipient_id, [image_message(recipient_id, image)])

    async def send_custom_json(self, recipient_id: str, json_message: dict[str, Any], **kwargs: Any) -> None:
        reason = retry_reason(json_message)
        if reason is not None:
            raise TurnMustBeRetried(reason)
        # `custom: {whatsapp: {...}}` lets one response carry bodies for several channels.
        body = json_message.get(CHANNEL_NAME, json_message)
        await self._send(recipient_id, [custom_message(recipient_id, body)])


def address_for(who: str) -> Address | None:
    """Where to send a customer's messages (blocking): see bot/store/identities.address_of."""
    with transaction() as conn:
        customer = resolve(conn, who)
        return None if customer is None else address_of(conn, customer.id)


def phone_for(who: str) -> str | None:
    with transaction() as conn:
        customer = resolve(conn, who)
        return None if customer is None else phone_of(conn, customer.id)


class WhatsAppInput(InputChannel):
    def __init__(self, config: WhatsAppConfig, link: LinkSettings | None = None) -> None:
        self.config = config
        # The opt-out link page shares the webhook's public prefix (bot/opt_out_link/routes.py).
        self.link = link or LinkSettings.from_env()
        self.quick_replies = QuickReplyTable.from_file(config.quick_replies_path)
        self.button_payloads = ButtonPayloads.from_file(Path(config.domain_path))
        self.unsupported_replies = UnsupportedReplies.from_file(Path(config.domain_path))
        self.app: Any = None  # the Sanic app serving the webhook: Rasa's agent is app.ctx.agent
        # Status webhooks are committed in batches by one writer (bot/whatsapp/status_batches.py).
        self.statuses = StatusWriter(signals.record_statuses)
        self.client = (
            CloudApiClient(config.api_url, config.phone_number_id, config.access_token)
            if config.can_send
            else None
        )
        for warning in config.warnings():
            logger.warning(warning)

    @classmethod
    def name(cls) -> str:
        return CHANNEL_NAME

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> WhatsAppInput:
        return cls(WhatsAppConfig.load(credentials))

    def get_output_channel(self) -> OutputChannel:
        return WhatsAppOutput(self.client)

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        webhook = Blueprint("whatsapp_webhook", __name__)
        opt_out_link.add_routes(webhook, self.link, business_name(Path(self.config.domain_path)))

        @webhook.get("/")
        async def health(_: Request) -> HTTPResponse:
            try:
                unidentified: dict[str, int] | None = await run_sync(signals.unidentified_counts)
            except Exception:
                logger.exception("could not read the unidentified-event counts")
                unidentified = None
            return response.json(
                {"status": "ok", "can_send": self.client is not None, "unidentified_events": unidentified}
            )

        @webhook.get("/webhook")
        async def handshake(request: Request) -> HTTPResponse:
            mode = request.args.get("hub.mode")
            token = request.args.get("hub.verify_token")
            challenge = request.args.get("hub.challenge", "")
            if self.config.verify_token and mode == "subscribe" and token == self.config.verify_token:
                return response.text(challenge)
            logger.warning("refused a webhook subscription handshake (mode=%s)", mode)
            return response.text("verification failed", status=403)

        @webhook.post("/webhook")
        async def receive(request: Request) -> HTTPResponse:
            refusal = self._refuse(request)
            if refusal is not None:
                return refusal
            self.app = request.app  # always the same one: where Rasa keeps its agent
            try:
                batch = parse_webhook(json.loads(request.body))
            # JSONDecodeError is a ValueError; JSON nested too deep for the decoder a RecursionError.
            except (ValueError, RecursionError, MalformedWebhook) as exc:
                logger.warning("malformed webhook: %s", exc)
                return response.json({"error": f"malformed webhook: {exc}"}, status=400)
            return await self._handle(batch, on_new_message)

        @webhook.listener("after_server_stop")
        async def close_client(*_: Any) -> None:
            # In-flight requests have had their answers by now; what is still queued is committed.
            await self.statuses.close()
            if self.client is not None:
                await self.client.close()

        return webhook

    def _refuse(self, request: Request) -> HTTPResponse | None:
        """Size and signature checks on the raw body, before anything reads it."""
        if len(request.body) > MAX_BODY_BYTES:
            return response.json({"error": "body too large"}, status=413)
        if not self.config.app_secret and not self.config.allow_unsigned:
            logger.error("webhook refused: WHATSAPP_APP_SECRET is not set")
            # 503, not 403: once the secret is configured, WhatsApp's retries still get through.
            return response.json({"error": "webhook signature secret not configured"}, status=503)
        if self.config.app_secret:
            check = check_signature(request.body, request.headers.get(HEADER), self.config.app_secret)
            if check is SignatureCheck.MISSING:
                return response.json({"error": f"missing {HEADER}"}, status=401)
            if check is SignatureCheck.INVALID:
                logger.warning("webhook refused: invalid signature")
                return response.json({"error": "invalid signature"}, status=403)
        if not self.config.phone_number_id:
            # Without our own number no change can be told apart from another number's; 503, not
            # 200, so that nothing is lost: WhatsApp redelivers once the variable is set.
            logger.error("webhook refused: WHATSAPP_PHONE_NUMBER_ID is not set")
            return response.json({"error": "business phone number id not configured"}, status=503)
        return None

    async def _handle(
        self, batch: WebhookBatch, on_new_message: Callable[[UserMessage], Awaitable[Any]]
    ) -> HTTPResponse:
        batch, foreign = split_by_number(batch, self.config.phone_number_id)
        if foreign:
            # Acknowledged (200), or WhatsApp would redeliver it for a week; never processed.
            logger.warning(
                "ignored %d message(s), %d status(es), %d preference(s) for business number(s) %s:"
                " not this bot's number",
                len(foreign.messages),
                len(foreign.statuses),
                len(foreign.preferences),
                ", ".join(sorted(mask_phone(n) for n in foreign.phone_number_ids())),
            )
        if batch.unidentified:
            await self._count_unidentified(batch)
        try:
            # Rotations first: later events of the same webhook may already use the new ids.
            if batch.rotations:
                await run_sync(signals.apply_rotations, batch.rotations)
            if batch.statuses:
                await self.statuses.record(batch.statuses)
            if batch.preferences:
                await run_sync(signals.apply_preferences, batch.preferences)
        except Exception:
            logger.exception("could not record statuses / preferences / identity changes; asking for a retry")
            return response.json({"error": "temporarily unavailable"}, status=500)

        failed_senders: set[tuple] = set()
        busy = False
        for message in batch.messages:
            sender = message.sender.identifiers
            if sender in failed_senders:
                continue  # keep a customer's messages in order: retry the rest with the failed one
            try:
                claimed = await run_soon(signals.claim, message)
            except Exception:
                logger.exception("customer or dedupe store unavailable; asking for a retry")
                failed_senders.add(sender)
                continue
            if claimed.claim is inbox.Claim.DONE:
                logger.info("duplicate delivery of %s acknowledged", mask_message_id(message.id))
                continue
            if claimed.claim is inbox.Claim.BUSY:
                busy = True
                failed_senders.add(sender)
                continue
            try:
                await self._deliver(message, claimed, on_new_message)
                await run_soon(inbox.finish, message.id)
            except Exception:
                logger.exception(
                    "message %s from %s failed; asking for a retry",
                    mask_message_id(message.id),
                    message.sender.masked,
                )
                failed_senders.add(sender)
                await self._release(message.id)

        if failed_senders and not busy:
            return response.json({"error": "processing failed, please retry"}, status=500)
        if failed_senders:
            return response.json({"error": "a copy of this message is being processed"}, status=503)
        return response.text("EVENT_RECEIVED")

    async def _count_unidentified(self, batch: WebhookBatch) -> None:
        """Nothing to retry: no retry would make these events attributable. Counting is best effort."""
        for event in batch.unidentified:
            logger.warning("acknowledged a %s event without processing it: %s", event.event, event.reason)
        try:
            await run_sync(signals.count_unidentified, batch.unidentified)
        except Exception:
            logger.exception("could not count %d unidentified event(s)", len(batch.unidentified))

    async def _unsupported_reply(self, sender_id: str) -> str:
        """utter_unsupported_message in the customer's language (bot/whatsapp/unsupported.py)."""
        try:
            language = await known_language(getattr(getattr(self.app, "ctx", None), "agent", None), sender_id)
        except Exception:
            # Not worth a redelivery: the answer goes out in the default language instead.
            logger.exception("could not read the language of %s", mask_identifier(sender_id))
            language = None
        return self.unsupported_replies.text_for(language)

    async def _release(self, wamid: str) -> None:
        try:
            await run_soon(inbox.release, wamid)
        except Exception:
            # The claim's lease runs out instead, and a later retry takes it over.
            logger.exception("could not release the claim on %s", mask_message_id(wamid))

    async def _deliver(
        self,
        message: InboundMessage,
        claimed: signals.Claimed,
        on_new_message: Callable[[UserMessage], Awaitable[Any]],
    ) -> None:
        customer_key = claimed.customer.key
        known = {customer_key: claimed.address} if claimed.address is not None else {}
        output = WhatsAppOutput(self.client, known)
        text = rasa_text(message, self.quick_replies, self.button_payloads)
        if text is None:
            kind = message.kind if isinstance(message, OtherMessage) else type(message).__name__
            logger.info("%s message from %s acknowledged without a turn", kind, message.sender.masked)
            if isinstance(message, OtherMessage) and message.expects_answer:
                await output.send_text_message(customer_key, await self._unsupported_reply(customer_key))
            return
        # A reply quoting a broadcast's template (a tap on its quick reply, or a quoted answer)
        # carries its wamid as context.id: the conversation learns which campaign it is about.
        broadcast_id = None
        if message.context_id:
            broadcast_id = await run_sync(_broadcast_of, message.context_id)
        # Rasa carries on when the tracker store fails: with an empty conversation when reading it
        # failed (a "yes" would miss the confirmation form), in memory when saving it failed.
        with watch_turn() as watch:
            await on_new_message(
                UserMessage(
                    text=text,
                    output_channel=output,
                    sender_id=customer_key,
                    input_channel=CHANNEL_NAME,
                    message_id=message.id,
                    metadata=message_metadata(message, broadcast_id),
                )
            )
        if watch.errors:
            raise TurnMustBeRetried("the tracker store failed during this turn") from watch.errors[0]


def _broadcast_of(wamid: str) -> str | None:
    with transaction() as conn:
        return deliveries.broadcast_of_message(conn, wamid)


def message_metadata(message: InboundMessage, broadcast_id: str | None = None) -> dict[str, Any]:
    """What actions can read from `tracker.latest_message['metadata']`: `identifier_kind` and
    `identifier_value` name the identifier the message came under, `words` what the customer sent
    as they sent it (typed text before any cleaning, or the title of the button they tapped), for
    the consent history and its evidence (actions/evidence.py); `broadcast_id` the broadcast whose
    template the message replies to (None: no broadcast)."""
    preferred = message.sender.preferred
    return {
        Metadata.WORDS: words_of(message),
        Metadata.WA_ID: message.wa_id,
        Metadata.USER_ID: message.sender.bsuid.value if message.sender.bsuid else None,
        Metadata.IDENTIFIER_KIND: preferred.kind,
        Metadata.IDENTIFIER_VALUE: preferred.value,
        Metadata.NAME: message.name,
        Metadata.USERNAME: message.sender.username,
        Metadata.MESSAGE_ID: message.id,
        Metadata.CONTEXT_ID: message.context_id,
        Metadata.BROADCAST_ID: broadcast_id,
        Metadata.PHONE_NUMBER_ID: message.phone_number_id,
        Metadata.TIMESTAMP: message.timestamp,
        Metadata.MESSAGE_KIND: kind_of(message).value,
    }


def kind_of(message: InboundMessage) -> MessageKind:
    """What the customer did: tapped a template's quick reply, one of our buttons or list rows (even
    one whose id is no longer ours: they tapped, they did not type), or typed."""
    if isinstance(message, QuickReply):
        return MessageKind.QUICK_REPLY
    if isinstance(message, ButtonReply):
        return MessageKind.BUTTON
    if isinstance(message, ListReply):
        return MessageKind.LIST
    return MessageKind.TEXT


def words_of(message: InboundMessage) -> str | None:
    """The customer's own words, or the label of the button or quick reply they tapped."""
    if isinstance(message, TextMessage):
        return message.body
    if isinstance(message, ButtonReply | ListReply):
        return message.title
    if isinstance(message, QuickReply):
        return message.text or message.payload
    return None

"""The stand-in's status webhooks (bench/broadcast_latency.py): sent, delivered and read for every
accepted message, signed as Meta signs them, to a receiving web server on loopback."""

import asyncio
import json

from aiohttp import web

from bot.fake_graph_api import StatusWebhooks
from bot.whatsapp.cloud_api import CloudApiClient
from bot.whatsapp.outbound import text_messages
from bot.whatsapp.signature import HEADER, SignatureCheck, check_signature
from tests.loopback import serving_post

SECRET = "status-webhook-secret"
TO = "16505551234"


async def test_every_accepted_message_comes_back_as_three_signed_statuses(fake_graph):
    received: list[tuple[SignatureCheck, dict]] = []
    all_three = asyncio.Event()

    async def webhook(request: web.Request) -> web.Response:
        body = await request.read()
        received.append((check_signature(body, request.headers.get(HEADER), SECRET), json.loads(body)))
        if len(received) == 3:
            all_three.set()
        return web.Response(text="ok")

    async with serving_post(webhook) as url:
        fake_graph.state.status_webhooks = StatusWebhooks(url, SECRET)
        client = CloudApiClient(fake_graph.api_url, "106540352242922", "test-access-token")
        try:
            [body] = text_messages(TO, "hi")
            sent = await client.send({**body, "biz_opaque_callback_data": "b-7"})
            await all_three.wait()
        finally:
            await client.close()
    assert {check for check, _ in received} == {SignatureCheck.VALID}
    statuses = [p["entry"][0]["changes"][0]["value"]["statuses"][0] for _, p in received]
    assert [s["status"] for s in statuses] == ["sent", "delivered", "read"]
    assert {(s["id"], s["recipient_id"], s["biz_opaque_callback_data"]) for s in statuses} == {
        (sent.message_id, TO, "b-7")
    }

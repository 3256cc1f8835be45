"""Random, malformed, mutated, forged and oversized bodies against the real channel in a Sanic app.

About 10,000 examples in all (hypothesis; `max_examples` per test below). What must hold:
- nothing crashes: every request gets an answer, and a 5xx only as one of the channel's declared
  failures (processing failed: the claim released, WhatsApp asked to retry), never Sanic's own;
- a body whose signature is not exactly Meta's is refused (401/403) and writes nothing at all;
- a body over 4 MB is refused with 413 whatever it holds;
- a validly signed body is processed (200), refused as malformed (400) or fails as declared (a
  mutated "from" that is no phone number cannot be stored); a real, unmutated payload is processed.
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from bot.db import dispose_engines, engine_for
from bot.fake_graph_api import FakeGraphServer
from bot.migrations import upgrade
from bot.schema import consent_events, customers, inbound_messages, message_statuses, tags
from bot.whatsapp import meta_payloads as meta
from bot.whatsapp.channel import MAX_BODY_BYTES
from bot.whatsapp.signature import HEADER, sign
from tests.whatsapp_app import APP_SECRET, WEBHOOK, RecordingAgent, make_app

# What the channel answers when processing failed (bot/whatsapp/channel.py); anything else with a
# 5xx is Sanic answering for an exception the channel let through.
DECLARED_FAILURES = {
    (500, "processing failed, please retry"),
    (500, "temporarily unavailable"),
}
FUZZ = settings(
    deadline=None,
    database=None,  # no example database under the project
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
pytestmark = pytest.mark.slow  # ~10,000 examples: `make test` runs them, `make fast` does not


@dataclass
class Channel:
    client: httpx.AsyncClient
    agent: RecordingAgent
    graph: FakeGraphServer
    database_url: str

    async def post(self, body: bytes, headers: dict[str, str]) -> int:
        response = await self.client.post(WEBHOOK, content=body, headers=headers)
        return response.status_code

    async def post_signed(self, body: bytes) -> int:
        """POST with Meta's signature; the status, after checking that a 5xx was a declared one."""
        response = await self.client.post(WEBHOOK, content=body, headers={HEADER: sign(body, APP_SECRET)})
        if response.status_code >= 500:
            assert (response.status_code, response.json().get("error")) in DECLARED_FAILURES
        with engine_for(self.database_url).connect() as conn:
            held = conn.execute(select(func.count()).where(inbound_messages.c.state != "done")).scalar_one()
        assert held == 0  # a failure released its claim: WhatsApp's retry will be processed
        return response.status_code

    def rows(self) -> int:
        """Rows in every table a webhook can write to."""
        tables = (inbound_messages, message_statuses, customers, tags, consent_events)
        counts = [select(func.count()).select_from(table).scalar_subquery() for table in tables]
        with engine_for(self.database_url).connect() as conn:
            return conn.execute(select(sum(counts[1:], counts[0]))).scalar_one()


@pytest.fixture
def database_url(monkeypatch) -> Iterator[str]:
    """A migrated SQLite database in memory-backed storage when there is some: thousands of
    webhooks, and on disk each commit waits for a sync (50 ms a message instead of 12)."""
    shm = Path("/dev/shm")
    folder = Path(tempfile.mkdtemp(prefix="fuzz-", dir=shm if shm.is_dir() else None))
    url = f"sqlite:///{folder / 'bot.sqlite3'}"
    monkeypatch.setenv("DATABASE_URL", url)
    upgrade(url)
    yield url
    dispose_engines(url)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
async def channel(database_url, caplog) -> AsyncIterator[Channel]:
    caplog.set_level(logging.ERROR, logger="bot.whatsapp.channel")  # a warning for each bad body
    graph = FakeGraphServer().start()
    app, agent = make_app(graph.api_url)
    # Sanic's test client starts the whole app again on every request (~80 ms); once started,
    # the app is driven through a plain ASGI client instead.
    await app.asgi_client.get("/webhooks/whatsapp/")
    async with httpx.AsyncClient(app=app, base_url="http://fuzz") as client:
        yield Channel(client, agent, graph, database_url)
    graph.stop()


# --- what gets sent ---

# Cheap strategies (no regular expressions, small documents): generating examples, not sending
# them, is most of the time this module takes.
wa_ids = st.integers(10**7, 10**15 - 1).map(str)  # what the customer store accepts
texts = st.text(min_size=1, max_size=100)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)

real_payloads = st.one_of(
    st.builds(meta.text, wa_ids, texts),
    st.builds(meta.button_reply, wa_ids, st.sampled_from(["/affirm", "/deny", "/EXTERNAL_x"]), texts),
    st.builds(meta.list_reply, wa_ids, st.text(min_size=1, max_size=50), texts),
    st.builds(meta.quick_reply, wa_ids, st.sampled_from(["STOP_PROMOTIONS", "TRACK_ORDER", "x"]), texts),
    st.builds(
        meta.message,
        wa_ids,
        st.sampled_from(["image", "audio", "location", "sticker", "reaction", "unsupported", "new_kind"]),
        st.none() | st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=3),
    ),
    st.builds(
        meta.status,
        st.integers(0, 10**12).map(lambda n: f"wamid.OUT{n}"),
        wa_ids,
        st.sampled_from(["sent", "delivered", "read", "failed", "deleted"]),
        error_code=st.none() | st.sampled_from([131050, 131026, 130429]),
    ),
    st.builds(meta.marketing_preference, wa_ids, st.sampled_from(["stop", "resume", "signup", "maybe"])),
)


def paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every place in a JSON document: a key path from the root."""
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += paths(child, (*prefix, index))
    return found


def mutate(document: Any, path: tuple, how: str, replacement: Any) -> Any:
    """A copy of the document with the value at `path` deleted, replaced, or doubled (lists)."""
    if not path:
        return replacement
    document = copy.deepcopy(document)
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if how == "delete":
        del parent[last]
    elif how == "double" and isinstance(parent, list):
        parent.insert(last, copy.deepcopy(parent[last]))
    else:
        parent[last] = replacement
    return document


@st.composite
def mutated_payloads(draw: st.DrawFn) -> tuple[dict, int]:
    """A real payload with 0-3 mutations; the number of mutations too."""
    document = draw(real_payloads)
    count = draw(st.integers(0, 3))
    for _ in range(count):
        path = draw(st.sampled_from(paths(document)))
        how = draw(st.sampled_from(["delete", "replace", "double"]))
        document = mutate(document, path, how, draw(json_values))
    return document, count


def encode(document: Any) -> bytes:
    return json.dumps(document).encode()


deeply_nested = st.integers(100, 20_000).map(lambda depth: b"[" * depth + b"]" * depth)
any_body = st.one_of(
    st.binary(max_size=1000),
    json_values.map(encode),
    real_payloads.map(encode),
    mutated_payloads().map(lambda pair: encode(pair[0])),
    deeply_nested,
)


# What can arrive in an HTTP header: printable ASCII.
header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=80)


def forged_headers(body: bytes) -> st.SearchStrategy[dict[str, str]]:
    """Every way of not carrying Meta's signature for exactly this body with our app secret."""
    right = sign(body, APP_SECRET)
    return st.one_of(
        st.just({}),
        header_text.map(lambda value: {HEADER: value}),
        st.integers(0, 2**256 - 1).map(lambda n: {HEADER: f"sha256={n:064x}"}),
        st.text(min_size=1, max_size=20).map(lambda secret: {HEADER: sign(body, secret + "x")}),
        st.binary(max_size=50).map(lambda other: {HEADER: sign(body + b" " + other, APP_SECRET)}),
        st.just({HEADER: right.upper()}),
        st.just({HEADER: right[:-1]}),
        st.just({HEADER: right + "0"}),
        st.just({HEADER: right.replace("sha256=", "sha1=")}),
        st.just({HEADER.lower().replace("256", "1"): right}),
    ).filter(lambda headers: headers.get(HEADER, "").strip() != right)


@st.composite
def forged_requests(draw: st.DrawFn) -> tuple[bytes, dict[str, str]]:
    body = draw(any_body)
    return body, draw(forged_headers(body))


# --- the properties ---


@settings(FUZZ, max_examples=4000)
@given(forged=forged_requests())
async def test_a_forged_or_unsigned_body_is_refused_and_writes_nothing(channel: Channel, forged):
    body, headers = forged
    assert await channel.post(body, headers) in (401, 403)
    assert channel.rows() == 0
    assert channel.agent.messages == []
    assert channel.graph.state.sent == []


@settings(FUZZ, max_examples=2500)
@given(body=st.one_of(st.binary(max_size=1000), json_values.map(encode), deeply_nested))
async def test_a_signed_body_of_random_bytes_or_json_never_crashes_the_channel(channel: Channel, body):
    status = await channel.post_signed(body)
    event(f"answered {status}")
    assert status in (200, 400, 500)


@settings(FUZZ, max_examples=3500)
@given(case=mutated_payloads())
async def test_a_signed_real_payload_mutated_or_not_is_processed_or_refused_as_malformed(
    channel: Channel, case
):
    document, mutations = case
    status = await channel.post_signed(encode(document))
    event(f"answered {status}")  # the mix: pytest --hypothesis-show-statistics
    assert status in (200, 400, 500)
    if mutations == 0:
        assert status == 200


def oversized(size: int, signer: Callable[[bytes], dict[str, str]]) -> tuple[bytes, dict[str, str]]:
    body = b'{"object": "whatsapp_business_account", "entry": [' + b" " * size + b"]}"
    return body, signer(body)


@settings(FUZZ, max_examples=200)
@given(
    size=st.integers(MAX_BODY_BYTES, MAX_BODY_BYTES + 2 * 1024 * 1024),
    signed=st.booleans(),
)
async def test_an_oversized_body_is_refused_before_anything_reads_it(channel: Channel, size, signed):
    body, headers = oversized(size, lambda b: {HEADER: sign(b, APP_SECRET)} if signed else {})
    assert await channel.post(body, headers) == 413
    assert channel.rows() == 0

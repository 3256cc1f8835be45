"""The Graph API client against the local fake: ids, retries and permanent refusals."""

import time

import pytest

from bot.whatsapp.cloud_api import CloudApiClient, RetryPolicy, SendRejected, SendUnavailable, is_retryable
from bot.whatsapp.outbound import text_messages

TO = "16505551234"
FAST = RetryPolicy(attempts=4, first_delay=0.01, max_delay=0.02)


@pytest.fixture
async def client(fake_graph):
    client = CloudApiClient(fake_graph.api_url, "106540352242922", "test-access-token", retry=FAST)
    yield client
    await client.close()


def fail(fake_graph, code, status, times, to=None):
    from bot.fake_graph_api import ScriptedFailure

    fake_graph.state.failures.append(ScriptedFailure(code=code, status=status, times=times, to=to))


async def test_send_returns_the_wamid(client, fake_graph):
    [body] = text_messages(TO, "hi")
    sent = await client.send(body)
    assert sent.message_id == fake_graph.state.sent[0]["id"]
    assert sent.message_id.startswith("wamid.")


async def test_throughput_limit_is_retried_with_backoff(client, fake_graph):
    fail(fake_graph, 130429, 400, times=2)
    await client.send(text_messages(TO, "hi")[0])
    assert fake_graph.state.attempts == 3
    assert len(fake_graph.state.sent) == 1


async def test_a_throughput_limit_that_persists_gives_up_after_the_bounded_attempts(fake_graph):
    policy = RetryPolicy(attempts=3, first_delay=0.05, max_delay=0.08, jitter=0.25)
    client = CloudApiClient(fake_graph.api_url, "106540352242922", "test-access-token", retry=policy)
    fail(fake_graph, 130429, 400, times=10)
    started = time.monotonic()
    with pytest.raises(SendUnavailable) as raised:
        await client.send(text_messages(TO, "hi")[0])
    waited = time.monotonic() - started
    await client.close()
    assert raised.value.code == 130429  # the caller fails the turn: WhatsApp redelivers the webhook
    assert fake_graph.state.attempts == 3
    assert fake_graph.state.sent == []
    assert waited >= 0.75 * (0.05 + 0.08)  # it backed off between attempts (jitter shortens a wait)


def test_backoff_doubles_up_to_its_cap_and_jitter_only_shortens_it():
    policy = RetryPolicy(attempts=6, first_delay=0.5, max_delay=4.0, jitter=0.25)
    assert [policy.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert policy.delay(2, draw=0.999) == pytest.approx(0.75, abs=0.001)
    assert all(
        0.75 * policy.delay(n) <= policy.delay(n, d) <= policy.delay(n) for n in (1, 4) for d in (0, 0.5)
    )


async def test_server_errors_are_retried_then_reported_as_unavailable(client, fake_graph):
    fail(fake_graph, 1, 500, times=10)
    with pytest.raises(SendUnavailable):
        await client.send(text_messages(TO, "hi")[0])
    assert fake_graph.state.attempts == FAST.attempts


@pytest.mark.parametrize("code", [131026, 131047, 131050, 132001])
async def test_permanent_errors_are_not_retried(client, fake_graph, code, caplog):
    fail(fake_graph, code, 400, times=1)
    with pytest.raises(SendRejected) as raised:
        await client.send(text_messages(TO, "hi")[0])
    assert raised.value.code == code
    assert fake_graph.state.attempts == 1
    assert TO not in caplog.text  # the customer's number is masked in logs
    assert "165******34" in caplog.text


async def test_wrong_token_is_a_permanent_error(fake_graph):
    client = CloudApiClient(fake_graph.api_url, "1", "wrong-token", retry=FAST)
    with pytest.raises(SendRejected):
        await client.send(text_messages(TO, "hi")[0])
    await client.close()


async def test_unreachable_api_is_unavailable_after_retries():
    client = CloudApiClient("http://127.0.0.1:9/v21.0", "1", "t", retry=FAST, timeout=1)
    with pytest.raises(SendUnavailable):
        await client.send(text_messages(TO, "hi")[0])
    await client.close()


def test_retry_decision():
    assert is_retryable(400, 130429)
    assert is_retryable(503, None)
    assert not is_retryable(400, 131026)
    assert not is_retryable(400, 131050)

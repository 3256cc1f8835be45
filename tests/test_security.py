"""The bot's secrets and personal data: a token on Rasa's HTTP API, secrets from the environment
only, and no phone number in the logs at INFO or above."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import yaml
from sqlalchemy import text

from bot import PROJECT_ROOT
from bot.db import engine_for
from bot.masking import mask_identifier
from bot.processes import Ports, action_server_token, auth_token, commands
from bot.rasa_server import rasa_argv
from bot.whatsapp import meta_payloads as meta
from tests.e2e_checks import (
    CONFIRM_TITLE,
    OPTED_OUT,
    conversation,
    last_text,
    new_customer,
    opt_out_count,
    rasa_api,
)
from tests.rasa_servers import AUTH_TOKEN, RunningBot, module_bot

# --- the runner and the configuration files (no servers) ---


@pytest.mark.parametrize("simulator", [False, True])
def test_the_runner_never_starts_rasa_without_its_api_token(simulator):
    token = "s3cret-token"
    started = commands(Ports(rasa=5005, actions=5055), simulator=simulator)
    (rasa,) = [argv for argv in started if argv[1:3] == ["-m", "bot.rasa_server"]]
    # The token goes by environment, not argv (`ps` shows argv; tests/test_server_exposure.py reads
    # /proc): bot.rasa_server adds it inside the process, always with the API on, and refuses to
    # start without one.
    exec_argv = rasa_argv(rasa[3:], {"RASA_AUTH_TOKEN": token})
    assert exec_argv[:2] == ["rasa", "run"] and "--enable-api" in exec_argv
    assert exec_argv[exec_argv.index("--auth-token") + 1] == token
    with pytest.raises(SystemExit):
        rasa_argv(rasa[3:], {"RASA_AUTH_TOKEN": ""})


@pytest.mark.parametrize(
    ("token_of", "variable"),
    [(auth_token, "RASA_AUTH_TOKEN"), (action_server_token, "ACTION_SERVER_TOKEN")],
)
def test_each_token_is_the_environments_or_a_private_random_one(tmp_path, token_of, variable):
    assert token_of({variable: "from-env"}, tmp_path / "token") == "from-env"
    generated = token_of({}, tmp_path / "token")
    assert len(generated) >= 32
    assert (tmp_path / "token").stat().st_mode & 0o077 == 0  # readable by its owner only
    assert token_of({}, tmp_path / "token") == generated  # the same on the next start


def test_an_empty_token_file_does_not_make_an_empty_token(tmp_path):
    (tmp_path / "token").write_text("\n")
    assert auth_token({}, tmp_path / "token").strip()


def test_no_secret_is_kept_in_the_configuration_files():
    credentials = yaml.safe_load((PROJECT_ROOT / "credentials.yml").read_text())
    whatsapp = credentials["bot.whatsapp.channel.WhatsAppInput"]
    for secret in ("app_secret", "access_token", "verify_token"):
        assert not whatsapp.get(secret), f"{secret} belongs in the environment"
    endpoints = yaml.safe_load((PROJECT_ROOT / "endpoints.yml").read_text())
    for value in scalars(endpoints):
        # ${VARIABLE} names a secret in the environment, which is where secrets belong
        value = re.sub(r"\$\{[A-Z_]+\}", "", str(value))
        assert not re.search(r"password|token|secret|://[^/\s]*@", value, re.IGNORECASE), value


def scalars(document: object) -> list[object]:
    if isinstance(document, dict):
        return [*document.keys(), *(v for child in document.values() for v in scalars(child))]
    if isinstance(document, list):
        return [v for child in document for v in scalars(child)]
    return [document]


# --- the running bot ---


# LOG_LEVEL pinned: what production logs by default, whatever the shell running the tests says.
bot = module_bot("security", LOG_LEVEL="INFO")


def call(bot: RunningBot, method: str, path: str, token: str | None) -> int:
    url = f"http://127.0.0.1:{bot.rasa_port}{path}" + ("" if token is None else f"?token={token}")
    data = json.dumps({"text": "stop", "name": "opt_out", "sender": "user"}).encode()
    request = urllib.request.Request(
        url,
        data=None if method == "GET" else data,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


API = [
    ("GET", "/status"),
    ("GET", "/domain"),
    ("GET", "/conversations/16505551234/tracker"),
    ("GET", "/conversations/16505551234/story"),
    ("POST", "/conversations/16505551234/messages"),
    ("POST", "/conversations/16505551234/trigger_intent"),
    ("POST", "/conversations/16505551234/tracker/events"),
    ("POST", "/model/parse"),
    ("POST", "/model/predict"),
]


@pytest.mark.rasa
@pytest.mark.parametrize(("method", "path"), API)
def test_rasas_http_api_refuses_a_request_without_the_token(bot, method, path):
    assert call(bot, method, path, token=None) in (401, 403)
    assert call(bot, method, path, token="") in (401, 403)
    assert call(bot, method, path, token="wrong-" + AUTH_TOKEN) in (401, 403)


@pytest.mark.rasa
def test_rasas_http_api_answers_with_the_token(bot):
    assert call(bot, "GET", "/status", token=AUTH_TOKEN) == 200


@pytest.mark.rasa
def test_the_health_checks_need_no_token(bot):
    for url in (
        f"http://127.0.0.1:{bot.rasa_port}/",
        f"http://127.0.0.1:{bot.rasa_port}/webhooks/whatsapp/",
        f"http://127.0.0.1:{bot.actions_port}/health",
    ):
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200, url


@contextmanager
def table_away(bot: RunningBot, table: str) -> Iterator[None]:
    engine = engine_for(bot.database_url)
    with engine.begin() as conn:
        conn.execute(text(f"ALTER TABLE {table} RENAME TO {table}_away"))
    try:
        yield
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"ALTER TABLE {table}_away RENAME TO {table}"))


@pytest.mark.rasa
def test_no_phone_number_reaches_the_logs_at_info_or_above(bot):
    wa_id, other, third = new_customer(), new_customer(), new_customer()
    # A whole conversation, with a question, and failures (in the channel, in an action: their
    # errors would show the SQL parameters) and WhatsApp's retries.
    assert bot.post(meta.text(wa_id, "STOP", name="Ada")) == 200
    question = meta.text(wa_id, "are you a bot?")
    with table_away(bot, "customers"):
        assert bot.post(question) == 500
    assert bot.post(question) == 200
    confirm = meta.button_reply(wa_id, "/affirm", CONFIRM_TITLE)
    with table_away(bot, "tags"):
        assert bot.post(confirm) == 500
    assert bot.post(confirm) == 200
    assert OPTED_OUT in last_text(bot, wa_id)
    assert bot.post(meta.message(wa_id, "image", {"id": "1", "mime_type": "image/jpeg"})) == 200
    # WhatsApp's own signals, and a send that fails.
    assert bot.post(meta.marketing_preference(other, "stop")) == 200
    assert bot.post(meta.status("wamid.OUT1", third, "failed", error_code=131050)) == 200
    # What the dashboard asks Rasa for.
    assert rasa_api(bot, f"/conversations/{conversation(bot, wa_id)}/tracker")[0] == 200
    assert opt_out_count(bot, wa_id) == (1, 1)

    logs = {name: (bot.workdir / name).read_text(errors="replace") for name in ("rasa.log", "actions.log")}
    # The logs were written: the opt-out, under the conversation's customer key, masked.
    assert mask_identifier(conversation(bot, wa_id)) in logs["actions.log"]
    for name, log in logs.items():
        for number in (wa_id, other, third):
            leaks = [line for line in log.splitlines() if number in line]
            assert leaks == [], f"{name} shows {number}:\n" + "\n".join(leaks[:5])

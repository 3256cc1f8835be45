"""bot/contract.py against what Rasa is really given: domain.yml, the training data, the rules,
credentials.yml; and the modules at the Rasa boundary spell no domain name of their own."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from bot import PROJECT_ROOT, contract
from bot.contract import (
    CONSENT_SOURCE,
    ActionName,
    Decision,
    Entity,
    Form,
    Intent,
    MessageKind,
    Metadata,
    Outcome,
    Response,
    Slot,
    message_kind,
    retry_reason,
    retry_turn,
)
from bot.whatsapp import meta_payloads as meta
from bot.whatsapp.channel import message_metadata
from bot.whatsapp.inbound import parse_webhook

ADA = "4915100000001"
DOMAIN = yaml.safe_load((PROJECT_ROOT / "domain.yml").read_text(encoding="utf-8"))

# The modules that talk to Rasa: every domain name they use comes from bot.contract.
BOUNDARY = [
    *sorted((PROJECT_ROOT / "actions").glob("*.py")),
    PROJECT_ROOT / "bot" / "whatsapp" / "channel.py",
    PROJECT_ROOT / "bot" / "whatsapp" / "unsupported.py",
    PROJECT_ROOT / "bot" / "business.py",
    PROJECT_ROOT / "bot" / "dashboard" / "conversation.py",
]


def names(kind: type) -> set[str]:
    return {value for key, value in vars(kind).items() if key.isupper() and isinstance(value, str)}


def domain_names(section: str) -> set[str]:
    entries = DOMAIN.get(section) or []
    if isinstance(entries, dict):
        return set(entries)
    return {next(iter(entry)) if isinstance(entry, dict) else entry for entry in entries}


def data_text() -> str:
    return "\n".join(
        path.read_text(encoding="utf-8") for path in sorted((PROJECT_ROOT / "data").rglob("*.yml"))
    )


@pytest.mark.parametrize(
    ("kind", "section"),
    [(Intent, "intents"), (Slot, "slots"), (Entity, "entities"), (Form, "forms"), (Response, "responses")],
)
def test_every_name_is_in_the_domain(kind, section):
    assert names(kind) <= domain_names(section)


def test_every_action_is_in_the_domain_or_rasas_own():
    assert names(ActionName) - {ActionName.LISTEN} <= domain_names("actions")


def test_every_intent_has_examples_or_rules_in_the_data():
    text = data_text()
    for intent in names(Intent):
        assert f"intent: {intent}" in text, intent


@pytest.mark.parametrize(
    ("values", "slot"), [(Decision, Slot.OPT_OUT_DECISION), (Outcome, Slot.OPT_OUT_OUTCOME)]
)
def test_the_categorical_values_are_the_slots(values, slot):
    assert names(values) == set(DOMAIN["slots"][slot]["values"])


def test_the_channel_is_the_one_credentials_yml_configures():
    credentials = yaml.safe_load((PROJECT_ROOT / "credentials.yml").read_text(encoding="utf-8"))
    (module_path,) = credentials
    assert module_path.rsplit(".", 1)[0] == "bot.whatsapp.channel"
    from bot.whatsapp.channel import WhatsAppInput

    assert WhatsAppInput.name() == contract.CHANNEL_NAME


def _string_literals(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    }


@pytest.mark.parametrize("path", BOUNDARY, ids=lambda path: str(path.relative_to(PROJECT_ROOT)))
def test_the_boundary_modules_spell_no_domain_name_of_their_own(path):
    domain = set().union(
        *(domain_names(s) for s in ("intents", "slots", "entities", "forms", "responses", "actions"))
    )
    # Rasa's own keys that share a word with the domain are not names of ours.
    assert _string_literals(path) & domain == set()


@pytest.mark.parametrize(
    ("payload", "kind", "source"),
    [
        (meta.text(ADA, "stop"), MessageKind.TEXT, "text"),
        (meta.button_reply(ADA, "/affirm", "Yes, stop them"), MessageKind.BUTTON, "button"),
        (meta.list_reply(ADA, "/opt_out", "Stop marketing"), MessageKind.LIST, "button"),
        (meta.quick_reply(ADA, "STOP_PROMOTIONS", "Stop promotions"), MessageKind.QUICK_REPLY, "template"),
    ],
)
def test_the_channel_writes_every_metadata_key_and_what_the_customer_did(payload, kind, source):
    (message,) = parse_webhook(payload).messages
    metadata = message_metadata(message)
    assert set(metadata) == names(Metadata)
    assert message_kind(metadata) is kind
    assert CONSENT_SOURCE[kind] == source


@pytest.mark.parametrize(
    ("metadata", "kind"),
    [
        ({Metadata.MESSAGE_KIND: "quick_reply"}, MessageKind.QUICK_REPLY),
        ({Metadata.MESSAGE_KIND: "button"}, MessageKind.BUTTON),
        # conversations saved before `message_kind` existed
        ({"message_type": "QuickReply"}, MessageKind.QUICK_REPLY),
        ({"message_type": "ListReply"}, MessageKind.LIST),
        ({Metadata.MESSAGE_KIND: "carrier pigeon"}, None),
        ({}, None),
        (None, None),
    ],
)
def test_the_kind_of_message_is_read_back(metadata, kind):
    assert message_kind(metadata) is kind


def test_every_kind_of_message_has_a_consent_source():
    assert set(CONSENT_SOURCE) == set(MessageKind)


def test_the_retry_signal_round_trips_and_nothing_else_is_one():
    assert retry_reason(retry_turn("could not save")) == "could not save"
    assert retry_reason({"whatsapp": {"type": "text"}}) is None

"""What the end-to-end language tests send and expect: each language's texts, as domain.yml has them."""

from __future__ import annotations

from functools import cache
from typing import Any

import yaml

from bot import PROJECT_ROOT
from bot.language import SUPPORTED
from tests.rasa_servers import RunningBot

BUSINESS_NAME = "Acme Store"
UNCONDITIONED = "en"
CONFIRMATION = "utter_ask_opt_out_form_opt_out_decision"

# language -> (a bare stop keyword of that language, a paraphrase of "stop the marketing", a typed yes)
MESSAGES = {
    "en": ("UNSUBSCRIBE", "please stop sending me promotions", "yes"),
    "es": ("BAJA", "quiero dejar de recibir promociones", "sí"),
    "pt": ("DESCADASTRAR", "não quero mais receber promoções", "sim"),
    "fr": ("ARRÊT", "je ne veux plus recevoir vos promotions", "oui"),
    "de": ("STOPP", "ich will keine Werbung mehr bekommen", "ja"),
    "id": ("BERHENTI", "saya tidak mau terima promo lagi", "iya"),
    "hi": ("BAND KARO", "mujhe promotions nahi chahiye", "haan"),
}
assert tuple(MESSAGES) == SUPPORTED


@cache
def responses() -> dict[str, list[dict[str, Any]]]:
    return yaml.safe_load((PROJECT_ROOT / "domain.yml").read_text(encoding="utf-8"))["responses"]


def variation(name: str, language: str) -> dict[str, Any]:
    for candidate in responses()[name]:
        conditions = candidate.get("condition") or []
        if (conditions[0]["value"] if conditions else UNCONDITIONED) == language:
            return candidate
    raise KeyError((name, language))


def text_of(name: str, language: str) -> str:
    return variation(name, language)["text"].format(business_name=BUSINESS_NAME)


def titles_of(name: str, language: str) -> list[str]:
    return [button["title"] for button in variation(name, language)["buttons"]]


@cache
def texts_by_language() -> dict[str, frozenset[str]]:
    """Every text the bot can say, by language (responses with a placeholder besides the business
    name are left out: none of them is part of these flows)."""
    found: dict[str, set[str]] = {language: set() for language in SUPPORTED}
    for name in responses():
        for language in SUPPORTED:
            try:
                found[language].add(text_of(name, language))
            except KeyError:
                continue
    return {language: frozenset(texts) for language, texts in found.items()}


def body_text(body: dict[str, Any]) -> str:
    if body["type"] == "interactive":
        return body["interactive"]["body"]["text"]
    return body["text"]["body"]


def button_titles(body: dict[str, Any]) -> list[str]:
    return [b["reply"]["title"] for b in body["interactive"]["action"]["buttons"]]


def replies_in(bot: RunningBot, wa_id: str, language: str, since: int = 0) -> tuple[int, int]:
    """(replies in that language, replies) sent to the customer from the `since`-th on."""
    sent = bot.sent_to(wa_id)[since:]
    return sum(body_text(body) in texts_by_language()[language] for body in sent), len(sent)

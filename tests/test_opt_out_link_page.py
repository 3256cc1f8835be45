"""The opt-out page's markup and texts: escaped, labelled, in every language, within WhatsApp's limits."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest

from bot.broadcast.template import TEMPLATES_DIR, TemplateButtons, buttons_of, template_message
from bot.cli.templates import localised
from bot.opt_out_link import page
from bot.opt_out_link.texts import DEFAULT_LANGUAGE, TEXTS, language_of, texts_for


class _Controls(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.buttons: list[dict[str, str | None]] = []
        self.hidden: dict[str | None, str | None] = {}
        self.lang: str | None = None
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "html":
            self.lang = values.get("lang")
        if tag == "button":
            self.buttons.append(values)
        if tag == "input" and values.get("type") == "hidden":
            self.hidden[values.get("name")] = values.get("value")
        if tag == "script":
            self.scripts += 1


@pytest.mark.parametrize("lang", sorted(TEXTS))
def test_the_question_page_has_two_labelled_choices_and_no_script(lang: str) -> None:
    texts = texts_for(lang)
    html = page.confirm_page(texts, lang, "Acme Store", "CSRF123")
    controls = _Controls()
    controls.feed(html)
    assert controls.lang == lang
    assert controls.scripts == 0
    assert [(b["name"], b["value"]) for b in controls.buttons] == [("choice", "stop"), ("choice", "keep")]
    assert controls.hidden == {"csrf": "CSRF123"}
    assert texts.confirm in html and texts.keep in html
    assert "Acme Store" in html
    assert '<meta name="viewport"' in html


def test_a_business_name_with_markup_is_escaped() -> None:
    html = page.confirm_page(texts_for("en"), "en", '<script>alert(1)</script>"', "x")
    assert "<script>" not in html
    assert "&lt;script&gt;" in html


@pytest.mark.parametrize("lang", sorted(TEXTS))
def test_every_text_formats_and_button_labels_fit_whatsapp(lang: str) -> None:
    texts = texts_for(lang)
    for name, value in _fields(texts):
        rendered = value.format(business="B", date="2026-01-01", days=30)
        assert "{" not in rendered, name
    assert len(texts.button_label) <= 25
    assert len(texts.quick_reply_label) <= 25


def _fields(texts):  # slots dataclass
    return [(name, getattr(texts, name)) for name in texts.__slots__]


@pytest.mark.parametrize(
    ("code", "lang"),
    [
        ("pt_BR", "pt"),
        ("es-419", "es"),
        ("DE", "de"),
        ("en_US", "en"),
        ("ja", DEFAULT_LANGUAGE),
        (None, DEFAULT_LANGUAGE),
    ],
)
def test_template_language_codes_map_to_our_languages(code: str | None, lang: str) -> None:
    assert language_of(code) == lang


def test_the_shipped_template_has_both_opt_out_buttons() -> None:
    definition = json.loads((TEMPLATES_DIR / "promo_offer.json").read_text())
    assert buttons_of(definition) == TemplateButtons(stop_quick_reply=0, opt_out_link=1)


def test_a_send_fills_the_link_button_with_the_token() -> None:
    body = template_message(
        "16505551234", "promo_offer", "en_US", ["20% off"], "b-1", TemplateButtons(0, 1), "TOKEN.MAC"
    )
    buttons = [c for c in body["template"]["components"] if c["type"] == "button"]
    assert buttons == [
        {
            "type": "button",
            "sub_type": "quick_reply",
            "index": "0",
            "parameters": [{"type": "payload", "payload": "STOP_PROMOTIONS"}],
        },
        {
            "type": "button",
            "sub_type": "url",
            "index": "1",
            "parameters": [{"type": "text", "text": "TOKEN.MAC"}],
        },
    ]


def test_a_template_with_the_link_is_never_sent_without_a_token() -> None:
    with pytest.raises(ValueError, match="token"):
        template_message("16505551234", "promo_offer", "en_US", [], "b-1", TemplateButtons(0, 1), None)


def test_link_only_and_quick_reply_only_templates() -> None:
    link_only = {
        "components": [
            {
                "type": "BUTTONS",
                "buttons": [
                    {"type": "URL", "text": "x", "url": "https://a.b/webhooks/whatsapp/opt-out/{{1}}"}
                ],
            }
        ]
    }
    assert buttons_of(link_only) == TemplateButtons(stop_quick_reply=None, opt_out_link=0)
    other_url = {
        "components": [
            {"type": "BUTTONS", "buttons": [{"type": "URL", "text": "Shop", "url": "https://a.b/shop/{{1}}"}]}
        ]
    }
    assert buttons_of(other_url) == TemplateButtons(stop_quick_reply=None, opt_out_link=None)


def test_the_submission_body_is_localised_and_points_at_the_public_url() -> None:
    definition = json.loads((TEMPLATES_DIR / "promo_offer.json").read_text())
    body = localised(definition, "de", "https://bot.acme.test")
    (buttons,) = [c["buttons"] for c in body["components"] if c["type"] == "BUTTONS"]
    assert buttons[0]["text"] == texts_for("de").quick_reply_label
    assert buttons[1]["text"] == texts_for("de").button_label
    assert buttons[1]["url"] == "https://bot.acme.test/webhooks/whatsapp/opt-out/{{1}}"
    assert re.fullmatch(
        r"https://bot\.acme\.test/webhooks/whatsapp/opt-out/[\w.-]+", buttons[1]["example"][0]
    )
    assert body["language"] == "de"

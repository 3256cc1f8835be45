"""Every text of domain.yml in every language we answer in (issue 13), within WhatsApp's limits."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import pytest
import yaml

from bot import PROJECT_ROOT
from bot.language import SUPPORTED
from bot.whatsapp.outbound import BUTTON_TITLE_LIMIT

UNCONDITIONED = "en"  # the variation without a condition is English (domain.yml, responses:)


@cache
def domain() -> dict[str, Any]:
    return yaml.safe_load((PROJECT_ROOT / "domain.yml").read_text(encoding="utf-8"))


def by_language(variations: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for variation in variations:
        conditions = variation.get("condition") or []
        assert all(c["type"] == "slot" and c["name"] == "language" for c in conditions), variation
        language = conditions[0]["value"] if conditions else UNCONDITIONED
        assert language not in found, f"two variations for {language}"
        found[language] = variation
    return found


RESPONSES = sorted(domain()["responses"])


def test_the_language_slot_holds_exactly_our_languages_and_a_default_among_them():
    slot = domain()["slots"]["language"]
    assert tuple(slot["values"]) == SUPPORTED
    assert slot["initial_value"] in SUPPORTED
    assert slot["mappings"] == [{"type": "custom"}]  # action_validate_slot_mappings (actions/language.py)
    assert "action_validate_slot_mappings" in domain()["actions"]


@pytest.mark.parametrize("name", RESPONSES)
def test_every_response_speaks_every_language_with_the_same_slots_and_payloads(name):
    variations = by_language(domain()["responses"][name])
    assert sorted(variations) == sorted(SUPPORTED)
    english = variations[UNCONDITIONED]
    for language, variation in variations.items():
        assert set(re.findall(r"\{(\w+)\}", variation["text"])) == set(
            re.findall(r"\{(\w+)\}", english["text"])
        )
        payloads = [b["payload"] for b in variation.get("buttons") or []]
        assert payloads == [b["payload"] for b in english.get("buttons") or []], language
        if language != UNCONDITIONED:
            assert variation["text"] != english["text"], f"{name} is not translated into {language}"


@pytest.mark.parametrize(
    "name", [n for n in RESPONSES if any("buttons" in v for v in domain()["responses"][n])]
)
def test_button_titles_fit_whatsapp_and_differ_within_a_message(name):
    for language, variation in by_language(domain()["responses"][name]).items():
        titles = [b["title"] for b in variation["buttons"]]
        assert all(len(t) <= BUTTON_TITLE_LIMIT for t in titles), (language, titles)
        assert len(set(titles)) == len(titles)

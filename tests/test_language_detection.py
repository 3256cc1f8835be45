"""Language detection (bot/language/, actions/language.py): sure answers only, Hinglish and marker
words first, and the slot changes only when the detector is sure of one of the domain's languages;
the customer's profile gets the language when it changes."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import update

from actions.language import ValidateSlotMappings, _Recorded, language_update
from bench.language_eval import Tally, tally
from bot.db import transaction
from bot.language.detect import detect
from bot.language.hinglish import is_hinglish
from bot.language.markers import MARKERS, marked_language
from bot.schema import customers
from bot.store.customers import profile, touch_customer


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("I don't want these offers any more", "en"),
        ("quiero darme de baja de las promociones", "es"),
        ("não quero receber mais mensagens", "pt"),
        ("arrêtez de m'envoyer des pubs", "fr"),
        ("bitte keine Werbung mehr", "de"),
        ("tolong jangan kirim promo lagi", "id"),
        ("mujhe ye messages mat bhejo", "hi"),
        ("मुझे संदेश मत भेजो", "hi"),
    ],
)
def test_a_sentence_is_detected(text, language):
    assert detect(text) == language


@pytest.mark.parametrize("text", ["ok", "OK!", "👍", "🙏🙏", "12345", "STOP", "stop", "no", "", "   "])
def test_a_message_without_language_keeps_the_known_one(text):
    assert detect(text) is None


def test_a_language_we_do_not_answer_in_is_not_forced_into_one_of_ours():
    assert detect("non voglio più ricevere le vostre offerte") is None  # Italian
    assert detect("ik wil geen berichten meer ontvangen") is None  # Dutch


def test_hinglish_needs_a_strong_word_and_enough_hindi_words():
    assert is_hinglish(["subscription", "cancel", "kar", "do"])
    assert is_hinglish(["theek", "hai"])
    assert not is_hinglish(["hai", "kak"])  # Indonesian "hi, sis": weak words alone
    assert not is_hinglish(["the", "band", "played", "ab", "mat", "song"])  # weak words alone
    assert not is_hinglish(
        ["please", "tell", "me", "what", "the", "status", "of", "my", "order", "is", "kar"]
    )
    assert not is_hinglish([])


ALL = ["en", "es", "pt", "fr", "de", "id", "hi"]


def typed(text: str | None, **metadata: object) -> dict:
    return {"text": text, "metadata": metadata}


def test_the_slot_changes_only_for_a_sure_new_language_the_domain_lists():
    assert language_update(typed("quiero darme de baja"), "en", ALL) == {"language": "es"}
    assert language_update(typed("quiero darme de baja"), "es", ALL) == {}  # already known
    assert language_update(typed("👍"), "es", ALL) == {}  # not sure: keep
    assert language_update(typed("/affirm"), "en", ALL) == {}  # a button payload
    assert language_update(typed(None), "en", ALL) == {}
    assert language_update(typed("quiero darme de baja"), "en", ["en", "pt"]) == {}  # not offered


def test_a_broadcast_trigger_does_not_switch_the_customer_to_english():
    external = typed("EXTERNAL: EXTERNAL_send_broadcast", is_external=True)
    assert language_update(external, "es", ALL) == {}


def test_marker_words_belong_to_one_language_and_decide_only_without_a_tie():
    shared = [w for w in set().union(*MARKERS.values()) if sum(w in m for m in MARKERS.values()) > 1]
    assert shared == []
    assert marked_language(["sim", "por", "favor"]) == "pt"
    assert marked_language(["oui", "ja"]) is None  # one French, one German marker
    assert marked_language(["lol"]) is None


def test_the_evaluation_counts_misses_and_undecided_messages_apart():
    guesses = {"hola": "es", "ok": None, "bom dia": "es", "mujhe": "hi"}
    tallies, misses = tally({"es": ["hola", "ok"], "pt": ["bom dia"], "hi-Deva": ["mujhe"]}, guesses.get)
    assert tallies["es"] == Tally(total=2, correct=1, wrong=0, undecided=1)
    assert tallies["pt"] == Tally(total=1, correct=0, wrong=1, undecided=0)
    assert tallies["hi-Deva"].correct == 1  # gold "hi"
    assert tallies["overall"] == Tally(total=4, correct=2, wrong=1, undecided=1)
    assert misses == [("es", "ok", None), ("pt", "bom dia", "es")]


def _turn(sender: str, text: str, known: str = "en") -> Tracker:
    return Tracker(sender, {"language": known}, typed(text), [], False, None, {}, "action_listen")


async def test_the_profile_gets_a_language_once_per_change_and_an_unknown_sender_none(sqlite_url):
    action, domain = ValidateSlotMappings(), {"slots": {"language": {"values": ["en", "es", "de"]}}}

    async def language_of(sender: str, text: str) -> str | None:
        await action.extract_language(CollectingDispatcher(), _turn(sender, text), domain)
        with transaction() as conn:
            return (profile(conn, sender) or {}).get("language")

    # A sender the store does not know gets nothing, and is asked about again once it is known.
    assert await language_of("34600000002", "quiero darme de baja de las promociones") is None
    with transaction() as conn:
        touch_customer(conn, "34600000002", None, datetime.now(timezone.utc))
    assert await language_of("34600000002", "quiero darme de baja de las promociones") == "es"
    # The same language again is not written again: emptied behind the action server's back,
    # the profile stays empty (the cost this saves is a transaction per turn) ...
    with transaction() as conn:
        conn.execute(update(customers).values(language=None))
    assert await language_of("34600000002", "no quiero más ofertas por favor") is None
    # ... and a new language is written at once.
    assert await language_of("34600000002", "bitte keine Werbung mehr") == "de"


def test_the_record_of_written_languages_forgets_the_least_recent_customer():
    recorded = _Recorded(size=2)
    recorded.put("a", "es")
    recorded.put("b", "de")
    recorded.put("a", "fr")  # "a" is now the most recent
    recorded.put("c", "en")
    assert (recorded.get("a"), recorded.get("b"), recorded.get("c")) == ("fr", None, "en")

"""Which of our languages a customer message is written in, or None when that is not clear.

Short messages are the norm ("sí", "ok", "👍", "STOP"), and a wrong guess makes the bot switch the
customer's language, so the detector answers only when it is sure; None keeps the language already
known for the customer. It decides, in order:
1. nothing to go by (no letters, or only words every market uses: "ok", "stop", "no"): None;
2. Hinglish by its word list (bot/language/hinglish.py): lingua has no model for romanised Hindi;
3. lingua (https://github.com/pemistahl/lingua-py, rule- and n-gram-based, built for short texts)
   runs on our languages plus a few common ones we do not answer in; when it is sure (confidence
   at least MIN_CONFIDENCE) of one of those, None: an Italian or Dutch message is "not ours"
   rather than forced into Spanish or German;
4. marker words (bot/language/markers.py): "não", "bitte", "tidak" settle what lingua cannot on
   two or three words;
5. lingua's answer, when it is sure.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache

from lingua import Language, LanguageDetector, LanguageDetectorBuilder

from bot.language import hinglish
from bot.language.markers import marked_language

# Ours (Hindi here is Devanagari script; Latin-script Hindi is hinglish.py's job).
OURS = {
    Language.ENGLISH: "en",
    Language.SPANISH: "es",
    Language.PORTUGUESE: "pt",
    Language.FRENCH: "fr",
    Language.GERMAN: "de",
    Language.INDONESIAN: "id",
    Language.HINDI: "hi",
}
# Languages we do not answer in but that customers of such a business write; recognising them
# keeps their messages from being read as one of ours. Malay is left out on purpose: it is too
# close to Indonesian for short texts, and an Indonesian answer suits a Malay reader.
OTHERS = (
    Language.ITALIAN,
    Language.DUTCH,
    Language.TURKISH,
    Language.ARABIC,
    Language.RUSSIAN,
    Language.CHINESE,
    Language.JAPANESE,
    Language.KOREAN,
    Language.THAI,
)
# lingua's confidence (its probabilities over the languages above sum to 1) below which the
# message is not taken as evidence of a language. Chosen on the DEV texts (bench/language_eval.py
# --dev): 0.4 and below named gibberish ("asdfgh", "ehh") as a language, 0.5 nothing wrongly.
MIN_CONFIDENCE = 0.5
# Words customers of every language use as they are: they say nothing about the language.
NEUTRAL_WORDS = frozenset(
    ["ok", "okay", "okey", "k", "kk", "stop", "no", "hmm", "hm", "lol", "haha", "hahaha", "sms", "whatsapp"]
)


@cache
def _lingua() -> LanguageDetector:
    # Loaded once per process, on first use (about a second).
    return LanguageDetectorBuilder.from_languages(*OURS, *OTHERS).with_preloaded_language_models().build()


def words_of(text: str) -> list[str]:
    """Lower-case words, accents kept ("não" is not "nao" to lingua); digits are not words."""
    return re.findall(r"[^\W\d_]+", unicodedata.normalize("NFC", text.casefold()))


def detect(text: str) -> str | None:
    """Our language code for the text ("es"), or None when it is not sure."""
    words = words_of(text)
    if not words or all(word in NEUTRAL_WORDS for word in words):
        return None
    if hinglish.is_hinglish(words):
        return "hi"
    ranked = _lingua().compute_language_confidence_values(text)
    sure = ranked[0] if ranked and ranked[0].value >= MIN_CONFIDENCE else None
    if sure is not None and sure.language not in OURS:
        return None  # a language we do not answer in: "non" in an Italian sentence is not French
    marked = marked_language(words)
    if marked is not None:
        return marked
    return None if sure is None else OURS[sure.language]

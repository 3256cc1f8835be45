"""Shortcuts the NLU model can learn: word n-grams that the training data has under one side only.

Run from the project root:

    .venv/bin/python -m bench.shortcuts [--intent opt_out] [--min-count 4] [--top 60]

A bag-of-n-grams classifier learns a word that only ever appears in opt-outs as "opt-out", whatever
the rest of the message says: before session 11 every "cómo hago" ("how do I") of the data was "how
do I stop these messages", and "cómo hago una devolución" ("how do I return something") started the
opt-out confirmation at confidence 1.00. This lists, for the given intent, the n-grams with at least
``--min-count`` examples under it and at most a tenth as many under all other intents (the
shortcuts towards it), then those of the other intents that it never contains (the shortcuts away
from it). The remedy is data, not a rule: write messages of the other side that use them
(`data/nlu/counterfactual_*.yml`, docs/conversation-design.md). Reads only `data/nlu`; no training.
"""

from __future__ import annotations

import argparse
import itertools
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from bot import PROJECT_ROOT

# At most this share of the n-gram's examples may be on the other side for it to count as one-sided.
OTHER_SIDE_SHARE = 0.1


@dataclass(frozen=True)
class Shortcut:
    ngram: str
    inside: int  # examples of the intent that contain it
    outside: int  # examples of every other intent that contain it


def ngrams(text: str) -> set[str]:
    """Lower-cased word unigrams and bigrams, the units of the word-level featurizer in config.yml."""
    words = re.findall(r"[\w']+", text.casefold())
    return {*words, *(f"{a} {b}" for a, b in itertools.pairwise(words))}


@dataclass(frozen=True)
class Counts:
    """How many examples of one intent (`inside`), and of every other intent, contain each n-gram."""

    inside: Counter[str]
    outside: Counter[str]


def ngram_counts(examples: Iterable[tuple[str, str]], intent: str) -> Counts:
    """Counted once, read by both lists. `examples` are (intent, text)."""
    counts = Counts(Counter(), Counter())
    for label, text in examples:
        (counts.inside if label == intent else counts.outside).update(ngrams(text))
    return counts


def one_sided(counts: Counts, min_count: int = 4) -> list[Shortcut]:
    """N-grams in at least `min_count` examples of the intent and at most a tenth as many elsewhere,
    most frequent first (ties by n-gram, so the list is stable)."""
    found = [
        Shortcut(g, n, counts.outside[g])
        for g, n in counts.inside.items()
        if n >= min_count and counts.outside[g] <= n * OTHER_SIDE_SHARE
    ]
    return sorted(found, key=lambda s: (-s.inside, s.ngram))


def never_inside(counts: Counts, min_count: int = 4) -> list[Shortcut]:
    """N-grams in at least `min_count` examples of other intents and in none of the intent."""
    found = [Shortcut(g, 0, n) for g, n in counts.outside.items() if n >= min_count and not counts.inside[g]]
    return sorted(found, key=lambda s: (-s.outside, s.ngram))


def load_examples(nlu_data: Path) -> list[tuple[str, str]]:
    from rasa.shared.nlu.training_data.loading import load_data

    return [(m.get("intent"), m.get("text")) for m in load_data(str(nlu_data)).intent_examples]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--intent", default="opt_out", help="the intent to look at (default opt_out)")
    parser.add_argument("--min-count", type=int, default=4, help="examples an n-gram needs to be listed")
    parser.add_argument("--top", type=int, default=60, help="how many of each list to print")
    parser.add_argument("--data", type=Path, default=PROJECT_ROOT / "data" / "nlu", help="NLU training data")
    args = parser.parse_args(argv)

    counts = ngram_counts(load_examples(args.data), args.intent)
    towards = one_sided(counts, args.min_count)
    away = never_inside(counts, args.min_count)
    print(f"{len(towards)} n-grams (almost) only in {args.intent} examples: examples inside / outside")
    for s in towards[: args.top]:
        print(f"  {s.inside:5d} {s.outside:4d}  {s.ngram}")
    print(f"{len(away)} n-grams of other intents that no {args.intent} example contains: examples outside")
    for s in away[: args.top]:
        print(f"  {s.outside:5d}  {s.ngram}")


if __name__ == "__main__":
    main()

"""Language detection (bot.language.detect) on short customer messages: accuracy per language.

Run from the project root (`make eval` runs the first form):

    .venv/bin/python -m bench.language_eval [--json results/language_eval.json]
    .venv/bin/python -m bench.language_eval --dev      # the DEV texts, the only ones tuned against

The held-out set bench/data/language_holdout.yml (frozen; never tune against it) gives, per gold
language, how many messages the detector named correctly, named wrongly (the bot would switch
to the wrong language) and left undecided ("not sure": the customer keeps the language already
known). Accuracy counts an undecided message as a miss, so it is the conservative number;
Hinglish (hi, Latin script) is reported on its own, Devanagari Hindi (hi-Deva) beside it. Its
`ambiguous` messages ("ok", "👍", "STOP") should be left undecided: that share is reported too.

--dev reads the texts of bench/data/opt_out_dev.yml and confirmation_answers_dev.yml by their
`lang` metadata: lingua's threshold, the marker words and the Hinglish word list were tuned on them.
Exit code 0 whenever it ran; the target (ACCURACY_TARGET overall) is reported, not asserted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench.results import write_json

HOLDOUT = Path("bench/data/language_holdout.yml")
DEV_FILES = (Path("bench/data/opt_out_dev.yml"), Path("bench/data/confirmation_answers_dev.yml"))
ACCURACY_TARGET = 0.95
OVERALL = "overall"
UNDECIDED = "undecided"
# Groups whose gold language differs from their name.
GOLD = {"hi-Deva": "hi"}


@dataclass(frozen=True)
class Tally:
    total: int = 0
    correct: int = 0
    wrong: int = 0
    undecided: int = 0

    def add(self, gold: str, predicted: str | None) -> Tally:
        return Tally(
            self.total + 1,
            self.correct + (predicted == gold),
            self.wrong + (predicted is not None and predicted != gold),
            self.undecided + (predicted is None),
        )

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.total if self.total else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "correct": self.correct,
            "wrong": self.wrong,
            "undecided": self.undecided,
            "accuracy": self.accuracy,
        }


def tally(
    groups: Mapping[str, Sequence[str]], detect: Callable[[str], str | None]
) -> tuple[dict[str, Tally], list[tuple[str, str, str | None]]]:
    """Pure (given detect): a Tally per group and overall, and the misses (group, text, predicted)."""
    tallies: dict[str, Tally] = {}
    misses = []
    overall = Tally()
    for group, texts in groups.items():
        gold = GOLD.get(group, group)
        current = Tally()
        for text in texts:
            predicted = detect(text)
            current = current.add(gold, predicted)
            overall = overall.add(gold, predicted)
            if predicted != gold:
                misses.append((group, text, predicted))
        tallies[group] = current
    tallies[OVERALL] = overall
    return tallies, misses


def undecided_share(texts: Iterable[str], detect: Callable[[str], str | None]) -> tuple[int, int]:
    """(left undecided, total) for messages that carry no language."""
    results = [detect(text) for text in texts]
    return sum(r is None for r in results), len(results)


def format_table(tallies: Mapping[str, Tally]) -> str:
    lines = [f"{'lang':<8} {'n':>4} {'correct':>8} {'wrong':>6} {'undecided':>10} {'accuracy':>9}"]
    for group, t in tallies.items():
        accuracy = "-" if t.accuracy is None else f"{t.accuracy:.3f}"
        lines.append(f"{group:<8} {t.total:>4} {t.correct:>8} {t.wrong:>6} {t.undecided:>10} {accuracy:>9}")
    return "\n".join(lines)


def load_holdout(path: Path) -> tuple[dict[str, list[str]], list[str]]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    groups = {str(k): [str(t) for t in v] for k, v in document["languages"].items()}
    return groups, [str(t) for t in document.get("ambiguous") or []]


def load_dev(paths: Sequence[Path]) -> dict[str, list[str]]:
    """Texts of Rasa NLU files by their `lang` metadata."""
    groups: dict[str, list[str]] = {}
    for path in paths:
        for block in yaml.safe_load(path.read_text(encoding="utf-8")).get("nlu") or []:
            for example in block.get("examples") or []:
                language = (example.get("metadata") or {}).get("lang")
                if language:
                    groups.setdefault(str(language), []).append(str(example["text"]))
    return groups


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dev", action="store_true", help="the DEV texts (tuned against), with every miss")
    parser.add_argument("--json", type=Path, help="write the numbers here")
    args = parser.parse_args(argv)

    from bot.language.detect import detect  # loads lingua's models (a second or two)

    if args.dev:
        groups, ambiguous, name = load_dev(DEV_FILES), [], "DEV texts (tuned against)"
    else:
        (groups, ambiguous), name = load_holdout(HOLDOUT), f"held-out {HOLDOUT}"
    tallies, misses = tally(groups, detect)
    print(f"\nLanguage detection, {name}")
    print(format_table(tallies))
    report: dict[str, Any] = {"set": name, "by_language": {k: v.as_dict() for k, v in tallies.items()}}
    if ambiguous:
        left, total = undecided_share(ambiguous, detect)
        print(f"ambiguous messages left undecided (keep the known language): {left}/{total}")
        report["ambiguous_undecided"] = {"undecided": left, "total": total}
    overall = tallies[OVERALL].accuracy or 0.0
    print(
        f"overall accuracy {overall:.3f} (target >= {ACCURACY_TARGET}):"
        f" {'TARGET MET' if overall >= ACCURACY_TARGET else 'TARGET MISSED'}"
    )
    if args.dev:
        for group, text, predicted in misses:
            print(f"  miss [{group}] {text!r} -> {predicted or UNDECIDED}")
    write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Whether a candidate may replace the published model: its opt-out evaluation must be no worse.

Pure functions: the numbers come from `bench.nlu_eval` run on the frozen held-out set
(nlu_eval's default, `bench/data/opt_out_holdout_v4.yml` since session 4). That set is a gate, not
a target: nobody tunes the data or the config against it, or it stops measuring anything.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# How much worse than the published model a candidate may be, in absolute points, before it is
# refused. 0.02 is 4 of the 210 opt-outs (recall) or of the 210 other messages (FPR) of the held-out
# set v4. Retraining the NLU on unchanged data moves these numbers by up to ~0.045 on this machine
# (docs/benchmarks.md), so a publish can be refused by chance: the safe direction. Every publish
# retrains DIET (Rasa's cache restored only the featurizers in our runs, even with nothing edited).
TOLERANCE = 0.02


@dataclass(frozen=True)
class Evaluation:
    """The opt-out numbers of one model on one held-out set (identified by its digest)."""

    holdout: str  # path, relative to the project root when inside it
    holdout_sha256: str
    recall: float
    false_positive_rate: float
    precision: float | None
    opt_out_examples: int
    non_opt_out_examples: int
    # Answers to the confirmation question read as "yes" (recorded for the dashboard; not gated).
    no_read_as_yes: int | None = None
    unclear_read_as_yes: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Evaluation:
        return cls(**{name: data.get(name) for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reasons: tuple[str, ...]  # why not (empty when allowed), or why there was nothing to compare


def publish_allowed(
    published: Evaluation | None, candidate: Evaluation, tolerance: float = TOLERANCE
) -> Decision:
    """Refuse a candidate whose recall is lower, or whose false-positive rate is higher, than the
    published model's by more than `tolerance`. Both must have been measured on the same set."""
    if published is None:
        return Decision(True, ("nothing published before: no numbers to compare with",))
    if published.holdout_sha256 != candidate.holdout_sha256:
        raise ValueError("the published and the candidate model were evaluated on different held-out sets")
    reasons = []
    if candidate.recall < published.recall - tolerance:
        reasons.append(
            f"opt-out recall {candidate.recall:.3f} is worse than the published {published.recall:.3f} "
            f"by more than {tolerance:.3f}"
        )
    if candidate.false_positive_rate > published.false_positive_rate + tolerance:
        reasons.append(
            f"false-positive rate {candidate.false_positive_rate:.3f} is worse than the published "
            f"{published.false_positive_rate:.3f} by more than {tolerance:.3f}"
        )
    return Decision(not reasons, tuple(reasons))


def evaluation_from_report(report: dict[str, Any], holdout: str, holdout_sha256: str) -> Evaluation:
    """The gate's numbers from the report `bench.nlu_eval --json` writes for one held-out set."""
    [result] = report["opt_out"].values()  # publish evaluates exactly one held-out set
    overall = result["model"]["overall"]
    answers = next(iter((report.get("confirmation") or {}).values()), None)
    return Evaluation(
        holdout=holdout,
        holdout_sha256=holdout_sha256,
        recall=overall["recall"],
        false_positive_rate=overall["false_positive_rate"],
        precision=overall["precision"],
        opt_out_examples=overall["opt_out_examples"],
        non_opt_out_examples=overall["non_opt_out_examples"],
        no_read_as_yes=None if answers is None else answers["no_read_as_yes"],
        unclear_read_as_yes=None if answers is None else answers["unclear_read_as_yes"],
    )

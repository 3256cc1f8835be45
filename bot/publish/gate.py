"""Whether a candidate may replace the published model: its opt-out evaluation must be no worse.

The numbers come from `bench.nlu_eval` run on a **DEV** set (`GATE_OPT_OUT_SET`,
`GATE_CONFIRMATION_SET`), never on the held-out one. A designer who reads "refused: recall dropped"
changes the data until the publish passes: that is tuning against the gate's set, so the gate's set
must be one that may be tuned against. The held-out measurement (`make eval`, nlu_eval's defaults)
stays out of the edit loop. Everything but the two paths is a pure function.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from bot import PROJECT_ROOT

# The gate's sets. From 2026-12-02 (session 5) the v5 "holdout" files are DEV sets: branch nlu5 was
# tuned while they were the held-out measurement, and the held-out v6 sets (`make eval`) replaced
# them. The file names keep "holdout" because bench/data/ is frozen (its sha256s are recorded); the
# gate never reads a newer held-out set (v6 and later): those belong to `make eval` alone.
GATE_OPT_OUT_SET = PROJECT_ROOT / "bench" / "data" / "opt_out_holdout_v5.yml"
GATE_CONFIRMATION_SET = PROJECT_ROOT / "bench" / "data" / "confirmation_answers_holdout_v5.yml"

# How much worse than the published model a candidate may be, in absolute points, before it is
# refused. 0.02 is 4 of the 210 opt-outs (recall) or of the 210 other messages (FPR) of the DEV
# set v5 (7 languages x 30 each). Retraining the NLU on unchanged data moves these numbers by up to
# ~0.045 on this machine (docs/benchmarks.md), so a publish can be refused by chance: the safe
# direction. Every publish retrains DIET (Rasa's cache never restores it: docs/benchmarks.md, "Webhooks during a publish").
TOLERANCE = 0.02


@dataclass(frozen=True)
class Evaluation:
    """The opt-out numbers of one model on one evaluation set (identified by its digest). The field
    names say "holdout" because publications.jsonl has always recorded them so; the set is DEV."""

    holdout: str  # the evaluation set's path, relative to the project root when inside it
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
        raise ValueError("the published and the candidate model were evaluated on different evaluation sets")
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
    """The gate's numbers from the report `bench.nlu_eval --json` writes for one evaluation set."""
    [result] = report["opt_out"].values()  # publish evaluates exactly one set
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

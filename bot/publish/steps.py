"""The checks a candidate goes through, each a subprocess with its output in a log file.

They run on the project directory given to `publish` (the edited copy a designer works in), with the
same commands `make test` and `make eval` use, so "publish" never means "checked differently".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot import PROJECT_ROOT
from bot.settings import child_environment

QUIET = {"RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "2"}
# The checks (training above all) often run on the host that serves the customers: at a lower
# priority they take only the CPU the running bot leaves, so turns keep their latency during a publish.
NICENESS = 10


def _lower_priority() -> None:
    os.nice(NICENESS)


@dataclass(frozen=True)
class StepFailed(Exception):
    step: str
    log: Path

    def __str__(self) -> str:
        tail = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
        return f"{self.step} failed (log: {self.log}):\n{tail}"


def _run(step: str, command: list[str], cwd: Path, log: Path) -> None:
    print(f"{step} ...", flush=True)
    started = time.monotonic()
    with log.open("w") as stream:
        done = subprocess.run(
            command,
            cwd=cwd,
            env=child_environment(QUIET),
            stdout=stream,
            stderr=subprocess.STDOUT,
            preexec_fn=_lower_priority,
        )
    if done.returncode != 0:
        raise StepFailed(step, log)
    print(f"  done in {time.monotonic() - started:.0f} s", flush=True)


def validate(project: Path, logs: Path) -> None:
    """`rasa data validate --fail-on-warnings`, as `make validate` runs it."""
    command = [sys.executable, "-m", "rasa", "data", "validate", "--fail-on-warnings"]
    _run("validating the data", command, project, logs / "validate.log")


def train(project: Path, out_dir: Path, logs: Path) -> Path:
    """A full model (NLU and dialogue) into `out_dir`, never over the published one. Rasa reuses the
    project's component cache (.rasa/cache, or RASA_CACHE_DIRECTORY): a component whose settings and
    inputs did not change is restored, not trained. An edited response changes neither the NLU data
    nor what the policies train on (Rasa strips the texts from their domain), so such a publish
    trains nothing; an edited NLU example trains the featurizers and DIET again."""
    # --skip-validation: `validate` has just checked the same files, more strictly (failing on
    # warnings); Rasa's own check before training repeated it (minutes at niceness 15 on a busy machine).
    command = [
        sys.executable, "-m", "rasa", "train",
        "--config", "config.yml", "--domain", "domain.yml", "--data", "data",
        "--out", str(out_dir), "--fixed-model-name", "candidate", "--skip-validation",
    ]  # fmt: skip
    _run("training the candidate", command, project, logs / "train.log")
    return out_dir / "candidate.tar.gz"


def story_test(project: Path, model: Path, logs: Path) -> None:
    """The test stories in tests/stories, failing on any wrong prediction, as `make story-test`."""
    command = [
        sys.executable, "-m", "rasa", "test", "core",
        "--model", str(model), "--stories", "tests/stories",
        "--fail-on-prediction-errors", "--out", str(logs / "stories"),
    ]  # fmt: skip
    _run("running the test stories", command, project, logs / "stories.log")


def evaluate(
    name: str, model: Path, project: Path, holdout: Path, confirmation: Path, logs: Path
) -> dict[str, Any]:
    """`bench.nlu_eval --model` on the gate's DEV sets (opt-outs, confirmation answers); its report."""
    report = logs / f"nlu_eval_{name}.json"
    command = [
        sys.executable, "-m", "bench.nlu_eval", "--model", str(model),
        "--holdout", str(holdout), "--confirmation", str(confirmation),
        "--nlu", str(project / "data" / "nlu"), "--config", str(project / "config.yml"),
        "--json", str(report),
    ]  # fmt: skip
    _run(f"evaluating the {name} model on {holdout.name}", command, PROJECT_ROOT, logs / f"{report.stem}.log")
    return json.loads(report.read_text())

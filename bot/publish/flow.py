"""Publish a candidate, or roll back to the previous publication, on every running Rasa replica.

publish:  validate -> train a candidate -> test stories -> evaluate it and the published model on the
          gate's DEV set (gate.GATE_OPT_OUT_SET, never a held-out one) -> gate (`gate.publish_allowed`,
          `--force` overrides and is recorded) -> copy it to the published directory -> load it into
          each replica in turn and check it -> record.
rollback: load the publication that was live before the current one into each replica -> record.

A replica keeps answering webhooks while it loads (Rasa swaps its agent when the new one is ready);
replicas are loaded one at a time so that, behind a balancer, the others carry the traffic. If one
replica fails, those already switched are put back on the previous model and nothing is recorded.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from bot import PROJECT_ROOT
from bot.publish import model_files, replicas, steps
from bot.publish.gate import (
    GATE_CONFIRMATION_SET,
    GATE_OPT_OUT_SET,
    TOLERANCE,
    Evaluation,
    evaluation_from_report,
    publish_allowed,
)
from bot.publish.records import (
    INITIAL,
    LOG_NAME,
    PUBLISH,
    ROLLBACK,
    Publication,
    Replica,
    append,
    current,
    exclusive,
    next_id,
    read_log,
    rollback_target,
)

SERVED_MODEL = "current.tar.gz"  # what `make run` and a restarted replica load
# The files whose changes a model is trained from: a dirty one means the commit does not say it all.
TRAINING_FILES = ("config.yml", "domain.yml", "data", "tests/stories")


@dataclass(frozen=True)
class Settings:
    project: Path  # config.yml, domain.yml, data/, tests/stories/
    models_dir: Path  # holds published/ (copies + log) and the served current.tar.gz
    rasa_urls: tuple[str, ...]
    token: str
    force: bool = False
    tolerance: float = TOLERANCE
    holdout: Path = GATE_OPT_OUT_SET  # DEV sets: see bot/publish/gate.py
    confirmation: Path = GATE_CONFIRMATION_SET

    @property
    def published_dir(self) -> Path:
        return self.models_dir / model_files.PUBLISHED_DIR

    @property
    def log_path(self) -> Path:
        return self.published_dir / LOG_NAME


class SwapFailed(RuntimeError):
    pass


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path.resolve())


def git_state(project: Path) -> tuple[str | None, bool | None]:
    """(HEAD commit, whether the training files differ from it), or (None, None) outside git."""
    head = subprocess.run(["git", "-C", str(project), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        return None, None
    status = subprocess.run(
        ["git", "-C", str(project), "status", "--porcelain", "--", *TRAINING_FILES],
        capture_output=True,
        text=True,
    )
    return head.stdout.strip(), bool(status.stdout.strip())


def _evaluate(settings: Settings, name: str, model: Path, logs: Path, digest: str) -> Evaluation:
    report = steps.evaluate(name, model, settings.project, settings.holdout, settings.confirmation, logs)
    return evaluation_from_report(report, _relative(settings.holdout), digest)


def swap(
    urls: tuple[str, ...], token: str, model: Path, model_id: str, fallback: Publication | None
) -> tuple[Replica, ...]:
    """Load `model` into each replica in turn; on a failure put the switched ones back on `fallback`."""
    done: list[Replica] = []
    for url in urls:
        print(f"loading {model.name} into {url} ...", flush=True)
        try:
            done.append(replicas.load(url, token, model, model_id))
        except replicas.ReplicaError as error:
            switched = [r.url for r in done] + ([url] if _runs(url, token, model_id) else [])
            reverted = _revert(switched, token, fallback)
            raise SwapFailed(f"{error}\n{reverted}") from None
        print(f"  {url} runs {model_id} ({done[-1].seconds:.1f} s)", flush=True)
    return tuple(done)


def _runs(url: str, token: str, model_id: str) -> bool:
    """Whether a replica whose load failed runs the new model anyway: a PUT that timed out on our
    side, or whose answer was lost, may still have swapped the model."""
    try:
        return replicas.loaded_model_id(url, token) == model_id
    except replicas.ReplicaError:
        return False  # unreachable: nothing to put back from here


def _revert(urls: list[str], token: str, fallback: Publication | None) -> str:
    if not urls:
        return "no replica was switched"
    if fallback is None:
        return f"switched replicas left on the new model (nothing to go back to): {', '.join(urls)}"
    failed = []
    for url in urls:
        try:
            replicas.load(url, token, Path(fallback.model_file), fallback.model_id)
        except replicas.ReplicaError as error:
            failed.append(f"{url}: {error}")
    if failed:
        return "could not put these back on the previous model: " + "; ".join(failed)
    return f"put back on the previous model {fallback.model_id}: {', '.join(urls)}"


def _serve(settings: Settings, published: Path) -> None:
    """A restarted replica (and `make run`) loads current.tar.gz: make it the published model."""
    model_files.copy_atomically(published, settings.models_dir / SERVED_MODEL)


def _adopt_served_model(settings: Settings, evaluation: Evaluation | None, at: datetime) -> Publication:
    """Before the first publish, the model being served becomes publication 1 (`initial`), kept as
    a published copy so that a rollback can go back to it."""
    served = settings.models_dir / SERVED_MODEL
    fingerprint = model_files.model_id(served)
    copy = settings.published_dir / model_files.published_name(at, fingerprint)
    model_files.copy_atomically(served, copy)
    initial = Publication(
        id=1,
        at=at.isoformat(),
        kind=INITIAL,
        model_file=str(copy.resolve()),
        model_id=fingerprint,
        sha256=model_files.sha256(copy),
        evaluation=evaluation,
    )
    append(settings.log_path, initial)
    return initial


def _print_evaluation(label: str, evaluation: Evaluation | None) -> None:
    if evaluation is None:
        print(f"{label}: none")
        return
    print(
        f"{label}: recall {evaluation.recall:.3f}, false-positive rate {evaluation.false_positive_rate:.3f} "
        f"({evaluation.opt_out_examples} opt-outs, {evaluation.non_opt_out_examples} others in "
        f"{evaluation.holdout}); 'no' answers read as yes: {evaluation.no_read_as_yes}"
    )


def preflight(settings: Settings, live: Publication | None) -> bool:
    """Every replica answers and says which model it runs, before minutes go into training."""
    for url in settings.rasa_urls:
        try:
            running = replicas.loaded_model_id(url, settings.token)
        except replicas.ReplicaError as error:
            print(f"cannot reach the Rasa server (is the bot running? right token?): {error}")
            return False
        expected = live.model_id if live is not None else None
        if expected is not None and running != expected:
            print(f"WARNING: {url} runs model {running}, not the published {expected}")
    return True


def publish(settings: Settings) -> int:
    started = _now()
    with exclusive(settings.published_dir):
        history = read_log(settings.log_path)
        live = current(history)
        if not preflight(settings, live):
            return 1
        work = settings.models_dir / "candidates" / f"{started:%Y%m%d-%H%M%S}"
        work.mkdir(parents=True, exist_ok=True)
        print(f"logs in {work}")
        try:
            return _publish(settings, history, live, work, started)
        finally:
            # The logs stay; the candidate archive does not (a published one has been copied).
            (work / "candidate.tar.gz").unlink(missing_ok=True)


def _check(
    settings: Settings, live: Publication | None, work: Path
) -> tuple[Path, Evaluation, Evaluation | None]:
    """Validate, train, test stories, evaluate: (candidate, its numbers, the published numbers)."""
    steps.validate(settings.project, work)
    candidate = steps.train(settings.project, work, work)
    steps.story_test(settings.project, candidate, work)
    digest = model_files.sha256(settings.holdout)
    evaluation = _evaluate(settings, "candidate", candidate, work, digest)
    served = settings.models_dir / SERVED_MODEL
    if live is not None and live.evaluation is not None and live.evaluation.holdout_sha256 == digest:
        baseline = live.evaluation
    elif live is not None:  # evaluated on another set: measure it again on this one
        baseline = _evaluate(settings, "published", Path(live.model_file), work, digest)
    elif served.exists():  # nothing published yet: the model being served is the one to beat
        baseline = _evaluate(settings, "published", served, work, digest)
    else:
        baseline = None
    return candidate, evaluation, baseline


def _publish(
    settings: Settings, history: list[Publication], live: Publication | None, work: Path, started: datetime
) -> int:
    try:
        candidate, evaluation, baseline = _check(settings, live, work)
    except steps.StepFailed as failure:
        print(f"NOT PUBLISHED: {failure}")
        return 1
    _print_evaluation("published", baseline)
    _print_evaluation("candidate", evaluation)
    decision = publish_allowed(baseline, evaluation, settings.tolerance)
    if not decision.allowed and not settings.force:
        print("NOT PUBLISHED: the opt-out evaluation is worse than the published model's:")
        print("\n".join(f"  - {reason}" for reason in decision.reasons))
        print("nothing was loaded; --force publishes anyway (and is recorded as forced)")
        return 1
    if not decision.allowed:
        print("FORCED: publishing despite: " + "; ".join(decision.reasons))
    if live is None and (settings.models_dir / SERVED_MODEL).exists():
        live = _adopt_served_model(settings, baseline, started)
        history.append(live)
    fingerprint = model_files.model_id(candidate)
    published = model_files.copy_atomically(
        candidate, settings.published_dir / model_files.published_name(started, fingerprint)
    )
    try:
        loaded = swap(settings.rasa_urls, settings.token, published, fingerprint, live)
    except SwapFailed as failure:
        published.unlink()  # not a publication: no replica kept it
        print(f"NOT PUBLISHED: {failure}")
        return 1
    commit, dirty = git_state(settings.project)
    publication = Publication(
        id=next_id(history),
        at=_now().isoformat(),
        kind=PUBLISH,
        model_file=str(published.resolve()),
        model_id=fingerprint,
        sha256=model_files.sha256(published),
        evaluation=evaluation,
        git_commit=commit,
        git_dirty=dirty,
        forced=not decision.allowed,
        gate_reasons=decision.reasons,
        baseline=baseline,
        tolerance=settings.tolerance,
        replicas=loaded,
        previous=None if live is None else live.id,
    )
    append(settings.log_path, publication)
    _serve(settings, published)
    print(f"PUBLISHED {published.name} (model {fingerprint}) as publication {publication.id}")
    return 0


def rollback(settings: Settings) -> int:
    with exclusive(settings.published_dir):
        history = read_log(settings.log_path)
        live, target = current(history), rollback_target(history)
        if live is None or target is None:
            print("NOTHING TO ROLL BACK TO: no publication before the current one")
            return 1
        model = Path(target.model_file)
        if not model.is_file():  # checked here: every replica would refuse it, one after the other
            print(f"NOT ROLLED BACK: the model file of publication {target.id} is missing: {model}")
            return 1
        if not preflight(settings, live):
            return 1
        try:
            loaded = swap(settings.rasa_urls, settings.token, model, target.model_id, live)
        except SwapFailed as failure:
            print(f"NOT ROLLED BACK: {failure}")
            return 1
        record = replace(
            target,  # the same model file, fingerprint, commit and evaluation
            id=next_id(history),
            at=_now().isoformat(),
            kind=ROLLBACK,
            forced=False,
            gate_reasons=(),
            baseline=None,
            tolerance=None,
            replicas=loaded,
            # The target's own predecessor: a second rollback goes further back, not forth again.
            previous=target.previous,
        )
        append(settings.log_path, record)
        _serve(settings, model)
    print(f"ROLLED BACK to publication {target.id} (model {target.model_id}) as publication {record.id}")
    return 0

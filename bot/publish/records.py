"""The publication log: one JSON object per line, appended, next to the published model files.

Why a file and not the bot's database: the log describes the model files and travels with them (the
same shared directory every Rasa replica reads the models from), publishing needs no database and no
migration, and the log is written by one command at a time (a lock file) and read by the dashboard.
Lines are only ever appended; a publication is never edited or removed.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bot.publish.gate import Evaluation

LOG_NAME = "publications.jsonl"
PUBLISH, ROLLBACK, INITIAL = "publish", "rollback", "initial"


@dataclass(frozen=True)
class Replica:
    url: str  # without the token
    started_at: float  # unix time the `PUT /model` was sent
    seconds: float  # until the replica answered and reported the new model


@dataclass(frozen=True)
class Publication:
    id: int
    at: str  # ISO 8601, UTC
    kind: str  # publish | rollback | initial (the model that ran before the first publish)
    model_file: str  # absolute path of the published copy, as every replica must see it
    model_id: str  # the fingerprint Rasa reports in GET /status
    sha256: str
    evaluation: Evaluation | None
    git_commit: str | None = None
    git_dirty: bool | None = None
    forced: bool = False
    gate_reasons: tuple[str, ...] = ()  # why the gate refused (a forced publish) or had nothing to compare
    baseline: Evaluation | None = None  # the published numbers the gate compared with
    tolerance: float | None = None
    replicas: tuple[Replica, ...] = ()
    # The publication that was live before this one: what `--rollback` goes back to.
    previous: int | None = None

    def as_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Publication:
        def evaluation(value: dict[str, Any] | None) -> Evaluation | None:
            return None if value is None else Evaluation.from_dict(value)

        return cls(
            **{
                **data,
                "evaluation": evaluation(data.get("evaluation")),
                "baseline": evaluation(data.get("baseline")),
                "gate_reasons": tuple(data.get("gate_reasons") or ()),
                "replicas": tuple(Replica(**r) for r in data.get("replicas") or ()),
            }
        )


def read_log(path: Path) -> list[Publication]:
    """Every publication, oldest first; an absent log is an empty history."""
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [Publication.from_dict(json.loads(line)) for line in lines if line.strip()]


def append(path: Path, publication: Publication) -> None:
    """One line, written and flushed to disk in one `write` (O_APPEND), so a crash cannot leave
    half a record in the middle of the log."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (publication.as_json() + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def current(history: list[Publication]) -> Publication | None:
    """What the replicas should be running: the newest publication."""
    return history[-1] if history else None


def rollback_target(history: list[Publication]) -> Publication | None:
    """The publication that was live before the current one. A rollback records the target's own
    `previous`, so rolling back again walks further back instead of toggling between two models."""
    live = current(history)
    if live is None or live.previous is None:
        return None
    return next(p for p in history if p.id == live.previous)


def next_id(history: list[Publication]) -> int:
    return history[-1].id + 1 if history else 1


class PublishBusy(RuntimeError):
    """Another publish or rollback holds the lock."""


@contextmanager
def exclusive(directory: Path) -> Iterator[None]:
    """One publish or rollback at a time per published-models directory (advisory `flock`)."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PublishBusy(f"another publish or rollback is running ({directory / '.lock'})") from None
        yield

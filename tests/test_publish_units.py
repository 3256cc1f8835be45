"""Publishing without Rasa: the gate, the publication log, model files, a whole publish with the
checks stubbed against stand-in replicas (allowed, refused, forced, failing stories, a replica that
refuses the model), what stops a rollback before it contacts a replica, one publish at a time, the
load numbers, and the dashboard's page."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bench.publish_load import Timed, during, summary
from bench.stats import Attempt
from bot.cli import main as cli_main
from bot.dashboard.app import DashboardConfig, build_app
from bot.publish import model_files, steps
from bot.publish.flow import Settings, git_state, publish, rollback
from bot.publish.gate import Evaluation, evaluation_from_report, publish_allowed
from bot.publish.records import (
    INITIAL,
    PUBLISH,
    ROLLBACK,
    Publication,
    PublishBusy,
    Replica,
    append,
    exclusive,
    read_log,
    rollback_target,
)
from bot.settings import from_env


def evaluation(recall: float, fpr: float, digest: str = "abc") -> Evaluation:
    return Evaluation("bench/data/opt_out_holdout_v5.yml", digest, recall, fpr, 0.95, 210, 210, 0, 1)


# --- the gate ---


def test_a_candidate_as_good_or_within_the_tolerance_is_allowed():
    published = evaluation(0.93, 0.05)
    assert publish_allowed(published, evaluation(0.93, 0.05)).allowed
    assert publish_allowed(published, evaluation(0.915, 0.065), tolerance=0.02).allowed
    assert publish_allowed(published, evaluation(0.99, 0.0)).allowed


@pytest.mark.parametrize(
    ("recall", "fpr", "named"),
    [
        (0.90, 0.05, ["recall"]),
        (0.93, 0.08, ["false-positive rate"]),
        (0.5, 0.2, ["recall", "false-positive"]),
    ],
)
def test_a_candidate_worse_beyond_the_tolerance_is_refused_with_the_reasons(recall, fpr, named):
    decision = publish_allowed(evaluation(0.93, 0.05), evaluation(recall, fpr), tolerance=0.02)
    assert not decision.allowed
    assert len(decision.reasons) == len(named)
    assert all(word in reason for word, reason in zip(named, decision.reasons, strict=True))


def test_the_first_publish_has_nothing_to_compare_with_and_different_sets_cannot_be_compared():
    assert publish_allowed(None, evaluation(0.1, 0.9)).reasons == (
        "nothing published before: no numbers to compare with",
    )
    with pytest.raises(ValueError, match="different evaluation sets"):
        publish_allowed(evaluation(0.9, 0.1, "one"), evaluation(0.9, 0.1, "two"))


def test_the_gate_reads_nlu_evals_report():
    overall = {"recall": 0.9, "false_positive_rate": 0.04, "precision": 0.96}
    report = {
        "opt_out": {
            "/x/opt_out_holdout_v2.yml": {
                "model": {"overall": {**overall, "opt_out_examples": 175, "non_opt_out_examples": 175}}
            }
        },
        "confirmation": {"/x/answers.yml": {"no_read_as_yes": 0, "unclear_read_as_yes": 2}},
    }
    assert evaluation_from_report(report, "h.yml", "d") == Evaluation(
        "h.yml", "d", 0.9, 0.04, 0.96, 175, 175, 0, 2
    )


# --- the log ---


def publication(id: int, kind: str = PUBLISH, previous: int | None = None, model: str = "") -> Publication:
    return Publication(
        id=id,
        at=f"2026-12-01T10:0{id}:00+00:00",
        kind=kind,
        model_file=f"/models/published/{model or id}.tar.gz",
        model_id=model or str(id),
        sha256="0" * 64,
        evaluation=evaluation(0.9, 0.05),
        replicas=(Replica("http://127.0.0.1:5005", 1.0e9, 2.5),),
        previous=previous,
    )


def test_publications_are_appended_and_read_back_unchanged(tmp_path):
    log = tmp_path / "published" / "publications.jsonl"
    assert read_log(log) == []
    first, second = publication(1, INITIAL), publication(2, previous=1)
    append(log, first)
    append(log, second)
    assert read_log(log) == [first, second]
    assert [json.loads(line)["id"] for line in log.read_text().splitlines()] == [1, 2]


def test_rollback_walks_back_through_the_publications_and_stops_at_the_first():
    history = [publication(1, INITIAL), publication(2, previous=1), publication(3, previous=2)]
    assert rollback_target(history).id == 2
    history.append(publication(4, ROLLBACK, previous=1, model="2"))  # what a rollback to 2 records
    assert rollback_target(history).id == 1
    history.append(publication(5, ROLLBACK, previous=None, model="1"))
    assert rollback_target(history) is None
    assert rollback_target([]) is None


def test_one_publish_at_a_time(tmp_path):
    with exclusive(tmp_path), pytest.raises(PublishBusy), exclusive(tmp_path):
        pass
    with exclusive(tmp_path):  # released again
        pass


# --- model files ---


def fake_model(path: Path, model_id: str) -> Path:
    metadata = json.dumps({"model_id": model_id}).encode()
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("/metadata.json")  # Rasa writes absolute member names
        info.size = len(metadata)
        tar.addfile(info, io.BytesIO(metadata))
    return path


def test_a_models_fingerprint_is_read_from_its_metadata_and_its_copy_is_named_for_it(tmp_path):
    model = fake_model(tmp_path / "candidate.tar.gz", "7d289ef141b44fa3b82ebc2e83bf096b")
    assert model_files.model_id(model) == "7d289ef141b44fa3b82ebc2e83bf096b"
    at = datetime(2026, 12, 1, 18, 45, tzinfo=timezone.utc)
    name = model_files.published_name(at, model_files.model_id(model))
    assert name == "20261201-184500-7d289ef1.tar.gz"
    copy = model_files.copy_atomically(model, tmp_path / "published" / name)
    assert model_files.sha256(copy) == model_files.sha256(model)
    assert [p.name for p in copy.parent.iterdir()] == [name]  # no partial file left behind
    with pytest.raises(ValueError, match="not a Rasa model"):
        with tarfile.open(tmp_path / "empty.tar.gz", "w:gz"):
            pass
        model_files.model_id(tmp_path / "empty.tar.gz")


def test_models_dir_comes_from_the_environment_or_defaults_to_models():
    assert model_files.models_dir(from_env({"MODELS_DIR": "/shared/models"})) == Path("/shared/models")
    assert model_files.models_dir(from_env({})).name == "models"


# --- rollback: what is checked before any replica is contacted ---
# (the swap itself, a wrong token, a replica down or dying half-way: tests/test_publish.py, real Rasa)


def settings(tmp_path: Path) -> Settings:
    # No Rasa listens on port 9: a rollback that got as far as the replicas would fail differently.
    return Settings(project=tmp_path, models_dir=tmp_path, rasa_urls=("http://127.0.0.1:9",), token="t")


def test_a_rollback_to_a_model_file_that_is_gone_contacts_no_replica_and_records_nothing(tmp_path, capsys):
    log = settings(tmp_path).log_path
    append(log, publication(1, INITIAL, model="gone"))
    append(log, publication(2, previous=1))
    assert rollback(settings(tmp_path)) == 1
    assert "NOT ROLLED BACK: the model file of publication 1 is missing: /models/published/gone" in (
        capsys.readouterr().out
    )
    assert [p.id for p in read_log(log)] == [1, 2]


def test_a_second_publish_while_one_runs_changes_nothing(tmp_path, capsys):
    with exclusive(settings(tmp_path).published_dir):
        code = cli_main(
            ["publish", "--rollback", "--models-dir", str(tmp_path), "--rasa-url", "http://127.0.0.1:9"]
        )
    assert code == 1
    assert "NOT PUBLISHED: another publish or rollback is running" in capsys.readouterr().out
    assert read_log(settings(tmp_path).log_path) == []


# --- the load numbers ---


def test_webhooks_during_a_publish_are_summarised_with_the_swap_windows():
    timed = [
        Timed(Attempt("1", 200, 0.05), 100.0),
        Timed(Attempt("2", 200, 2.0), 101.0),  # due while a replica loaded
        Timed(Attempt("1", 500, 0.01), 102.0),
        Timed(Attempt("2", 200, 0.05), 103.0),
    ]
    assert [t.due for t in during(timed, [(100.5, 101.5)])] == [101.0]
    numbers = summary(timed, {"1": 1, "2": 1}, [(100.5, 101.5)])
    assert (numbers["sent"], numbers["non_200"], numbers["unanswered"]) == (4, 1, 1)
    assert numbers["rate_per_s"] == 1.0
    assert numbers["during_swap"] == {"sent": 1, "latency_ms": {"p50": 2000, "p95": 2000, "max": 2000}}
    assert numbers["swap_windows_s"] == [1.0]


# --- the dashboard ---


@pytest.fixture
async def dashboard(tmp_path, sqlite_url) -> Iterator[tuple[TestClient, Path]]:
    log = tmp_path / "publications.jsonl"
    client = TestClient(
        TestServer(build_app(DashboardConfig(token="t", rasa_url="http://127.0.0.1:9", publications=log)))
    )
    await client.start_server()
    assert (await client.get("/models?token=t", allow_redirects=False)).status == 303  # logs in
    yield client, log
    await client.close()


async def test_the_dashboard_says_when_nothing_was_published(dashboard):
    client, _ = dashboard
    page = await (await client.get("/models")).text()
    assert "Nothing has been published yet" in page
    assert '<a href="/models" aria-current="page">Published model</a>' in page


async def test_the_dashboard_shows_the_published_model_its_numbers_and_the_history(dashboard):
    client, log = dashboard
    append(log, publication(1, INITIAL))
    forced = Publication(
        **{
            **publication(2, previous=1).__dict__,
            "model_id": "f00dfeed" * 4,
            "evaluation": evaluation(0.412, 0.031),
            "forced": True,
            "gate_reasons": ("opt-out recall 0.412 is worse than the published 0.900 by more than 0.020",),
            "git_commit": "0123456789abcdef",
            "git_dirty": True,
        }
    )
    append(log, forced)
    page = await (await client.get("/models")).text()
    assert "f00dfeedf00dfeedf00dfeedf00dfeed" in page
    assert "recall 0.412, false-positive rate 0.031" in page
    assert "yes: opt-out recall 0.412 is worse" in page
    assert "0123456789ab with uncommitted changes" in page
    assert "http://127.0.0.1:5005" in page
    history = page.split("<h2>History</h2>")[1]
    assert history.index("f00dfeedf00d") < history.index("running before the first publish")
    assert "<td>forced</td>" in history


def test_the_checks_run_below_the_serving_bot_priority(tmp_path):
    log = tmp_path / "nice.log"
    steps._run("niceness", [sys.executable, "-c", "import os; print(os.nice(0))"], tmp_path, log)
    assert int(log.read_text().split()[-1]) == min(19, os.nice(0) + steps.NICENESS)  # 19: the lowest


def test_the_gate_evaluates_on_the_dev_sets_never_on_a_newer_held_out_one():
    """A refused designer edits until the publish passes: the gate's set is tuned against, so it must
    be a DEV set (v5 from 2026-12-02), never the held-out v6 or later that `make eval` reports on."""
    from bot.publish.flow import Settings
    from bot.publish.gate import GATE_CONFIRMATION_SET, GATE_OPT_OUT_SET

    settings = Settings(project=Path("."), models_dir=Path("."), rasa_urls=(), token="")
    assert (settings.holdout, settings.confirmation) == (GATE_OPT_OUT_SET, GATE_CONFIRMATION_SET)
    assert (GATE_OPT_OUT_SET.name, GATE_CONFIRMATION_SET.name) == (
        "opt_out_holdout_v5.yml",
        "confirmation_answers_holdout_v5.yml",
    )
    assert GATE_OPT_OUT_SET.is_file() and GATE_CONFIRMATION_SET.is_file()


# --- a whole publish with the checks stubbed and stand-in replicas ---
# The real checks (validation, training, test stories, nlu_eval) and real Rasa replicas run in
# tests/test_publish.py, once, for a publish the gate allows; here every branch of the decision.


class StandInReplica:
    """Rasa's two routes that publishing calls, on loopback: GET /status and PUT /model (which
    reads the model file's fingerprint as Rasa would). Every load is appended to `loads`."""

    def __init__(self, model_id: str, loads: list[tuple[str, str]], token: str = "t") -> None:
        self.model_id, self.loads, self.token, self.refuse = model_id, loads, token, False
        replica = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _answer(self, status: int, body: dict | None = None) -> None:
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _authorised(self) -> bool:
                query = parse_qs(urlsplit(self.path).query)
                return query.get("token") == [replica.token]

            def do_GET(self) -> None:
                if not self._authorised():
                    return self._answer(401, {"message": "unauthorised"})
                self._answer(200, {"model_id": replica.model_id})

            def do_PUT(self) -> None:
                if not self._authorised():
                    return self._answer(401, {"message": "unauthorised"})
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if replica.refuse:
                    return self._answer(500, {"message": "could not load the model"})
                replica.model_id = model_files.model_id(Path(body["model_file"]))
                replica.loads.append((replica.url, replica.model_id))
                self._answer(204)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Checks:
    """What the stubbed checks saw and what they answer: the numbers per model fingerprint."""

    numbers: dict[str, tuple[float, float]]
    candidate_id: str = "c" * 32
    stories_pass: bool = True
    ran: list[str] = field(default_factory=list)


@pytest.fixture
def stubbed(tmp_path, monkeypatch) -> Iterator[tuple[Settings, Checks, list[StandInReplica], list]]:
    models = tmp_path / "models"
    models.mkdir()
    fake_model(models / "current.tar.gz", "a" * 32)  # what the bot runs before the first publish
    checks = Checks(numbers={"a" * 32: (0.93, 0.05)})

    def train(project: Path, out_dir: Path, logs: Path) -> Path:
        checks.ran.append("train")
        return fake_model(out_dir / "candidate.tar.gz", checks.candidate_id)

    def story_test(project: Path, model: Path, logs: Path) -> None:
        checks.ran.append("stories")
        if not checks.stories_pass:
            (logs / "stories.log").write_text("1 story failed")
            raise steps.StepFailed("running the test stories", logs / "stories.log")

    def evaluate(name: str, model: Path, project: Path, holdout: Path, confirmation: Path, logs: Path):
        checks.ran.append(f"evaluate {name}")
        recall, fpr = checks.numbers[model_files.model_id(model)]
        overall = {"recall": recall, "false_positive_rate": fpr, "precision": 0.9}
        overall |= {"opt_out_examples": 210, "non_opt_out_examples": 210}
        return {"opt_out": {str(holdout): {"model": {"overall": overall}}}}

    monkeypatch.setattr(steps, "validate", lambda project, logs: checks.ran.append("validate"))
    monkeypatch.setattr(steps, "train", train)
    monkeypatch.setattr(steps, "story_test", story_test)
    monkeypatch.setattr(steps, "evaluate", evaluate)
    loads: list[tuple[str, str]] = []
    replicas = [StandInReplica("a" * 32, loads), StandInReplica("a" * 32, loads)]
    urls = tuple(r.url for r in replicas)
    yield Settings(project=tmp_path, models_dir=models, rasa_urls=urls, token="t"), checks, replicas, loads
    for replica in replicas:
        replica.close()


def published_files(settings: Settings) -> list[str]:
    return sorted(p.name for p in settings.published_dir.glob("*.tar.gz"))


def test_a_candidate_as_good_as_the_served_model_is_loaded_into_each_replica_and_recorded(stubbed, capsys):
    settings, checks, replicas, loads = stubbed
    checks.numbers[checks.candidate_id] = (0.92, 0.06)  # worse, within the tolerance

    assert publish(settings) == 0

    assert checks.ran == ["validate", "train", "stories", "evaluate candidate", "evaluate published"]
    assert loads == [(replicas[0].url, checks.candidate_id), (replicas[1].url, checks.candidate_id)]
    initial, published = read_log(settings.log_path)
    assert (initial.kind, initial.model_id, initial.evaluation.recall) == (INITIAL, "a" * 32, 0.93)
    assert (published.kind, published.previous, published.forced) == (PUBLISH, initial.id, False)
    assert (published.evaluation.recall, published.baseline, published.tolerance) == (
        0.92,
        initial.evaluation,
        0.02,
    )
    assert [r.url for r in published.replicas] == list(settings.rasa_urls)
    assert model_files.model_id(settings.models_dir / "current.tar.gz") == checks.candidate_id
    assert "PUBLISHED" in capsys.readouterr().out


def test_a_candidate_worse_beyond_the_tolerance_is_refused_and_nothing_is_loaded(stubbed, capsys):
    settings, checks, _replicas, loads = stubbed
    checks.numbers[checks.candidate_id] = (0.90, 0.05)  # recall 0.03 lower
    served = model_files.sha256(settings.models_dir / "current.tar.gz")

    assert publish(settings) == 1

    out = capsys.readouterr().out
    assert "NOT PUBLISHED: the opt-out evaluation is worse than the published model's" in out
    assert "opt-out recall 0.900 is worse than the published 0.930 by more than 0.020" in out
    assert loads == [] and read_log(settings.log_path) == [] and published_files(settings) == []
    assert model_files.sha256(settings.models_dir / "current.tar.gz") == served
    assert list(settings.models_dir.glob("candidates/*/candidate.tar.gz")) == []  # not kept


def test_a_forced_publish_of_a_worse_candidate_is_loaded_and_recorded_as_forced(stubbed):
    settings, checks, _replicas, loads = stubbed
    checks.numbers[checks.candidate_id] = (0.93, 0.09)  # false-positive rate 0.04 higher

    assert publish(dataclasses.replace(settings, force=True)) == 0

    _initial, forced = read_log(settings.log_path)
    assert forced.forced is True
    assert forced.gate_reasons == (
        "false-positive rate 0.090 is worse than the published 0.050 by more than 0.020",
    )
    assert [model for _url, model in loads] == [checks.candidate_id] * 2


def test_the_next_publish_compares_with_the_recorded_numbers_of_the_live_publication(stubbed):
    settings, checks, _replicas, _loads = stubbed
    checks.numbers[checks.candidate_id] = (0.95, 0.04)
    assert publish(settings) == 0
    checks.ran.clear()
    checks.candidate_id = "d" * 32
    checks.numbers[checks.candidate_id] = (0.92, 0.04)  # 0.03 below the live 0.95, not the first 0.93

    assert publish(settings) == 1

    assert checks.ran == ["validate", "train", "stories", "evaluate candidate"]  # not re-evaluated


def test_failing_test_stories_stop_the_publish_before_the_evaluation(stubbed, capsys):
    settings, checks, _replicas, loads = stubbed
    checks.stories_pass = False
    assert publish(dataclasses.replace(settings, force=True)) == 1  # --force does not skip them
    assert "NOT PUBLISHED: running the test stories failed" in capsys.readouterr().out
    assert checks.ran == ["validate", "train", "stories"]
    assert loads == [] and read_log(settings.log_path) == []


def test_a_replica_that_refuses_the_model_puts_the_switched_ones_back_and_nothing_is_recorded(
    stubbed, capsys
):
    settings, checks, replicas, loads = stubbed
    checks.numbers[checks.candidate_id] = (0.93, 0.05)
    replicas[1].refuse = True

    assert publish(settings) == 1

    out = capsys.readouterr().out
    assert "NOT PUBLISHED" in out and "HTTP 500" in out
    assert f"put back on the previous model {'a' * 32}: {replicas[0].url}" in out
    assert loads == [(replicas[0].url, checks.candidate_id), (replicas[0].url, "a" * 32)]
    assert replicas[0].model_id == "a" * 32
    # The served model was adopted as publication 1 (to have something to go back to); no publish.
    assert [p.kind for p in read_log(settings.log_path)] == [INITIAL]
    assert len(published_files(settings)) == 1  # the adopted copy; the candidate's was removed


def test_a_publication_names_the_projects_commit_and_whether_the_training_files_differ_from_it(tmp_path):
    assert git_state(tmp_path) == (None, None)  # not a repository
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    (tmp_path / "domain.yml").write_text("version: '3.1'\n")
    (tmp_path / "notes.txt").write_text("not a training file\n")
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "first"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    (tmp_path / "notes.txt").write_text("edited\n")
    assert git_state(tmp_path) == (head, False)
    (tmp_path / "domain.yml").write_text("version: '3.1'\nresponses: {}\n")
    assert git_state(tmp_path) == (head, True)

"""Publishing without servers: the gate, the publication log, model files, the swap's rollback on a
failing replica (against stand-in Rasa servers), the load numbers, and the dashboard's page."""

from __future__ import annotations

import io
import json
import os
import sys
import tarfile
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bench.publish_load import Timed, during, summary
from bench.stats import Attempt
from bot.dashboard.app import DashboardConfig, build_app
from bot.publish import model_files, steps
from bot.publish.flow import SwapFailed, swap
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


def evaluation(recall: float, fpr: float, digest: str = "abc") -> Evaluation:
    return Evaluation("bench/data/opt_out_holdout_v2.yml", digest, recall, fpr, 0.95, 175, 175, 0, 1)


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
    with pytest.raises(ValueError, match="different held-out sets"):
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
    assert model_files.models_dir({"MODELS_DIR": "/shared/models"}) == Path("/shared/models")
    assert model_files.models_dir({}).name == "models"


# --- the swap, against stand-in Rasa servers ---


class StandInRasa:
    """PUT /model and GET /status with a token; `refuse` answers the PUT with 500."""

    def __init__(self, refuse: bool = False) -> None:
        self.loaded: list[str] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _authorised(self) -> bool:
                if "token=secret" not in self.path:
                    self.send_response(401)
                    self.end_headers()
                    return False
                return True

            def do_PUT(self) -> None:
                if not self._authorised():
                    return
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if refuse:
                    self.send_response(500)
                    self.end_headers()
                    return
                stand_in.loaded.append(Path(body["model_file"]).stem.split(".")[0])
                self.send_response(204)
                self.end_headers()

            def do_GET(self) -> None:
                if not self._authorised():
                    return
                body = json.dumps({"model_id": stand_in.loaded[-1] if stand_in.loaded else None}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stand_ins() -> Iterator[list[StandInRasa]]:
    servers = [StandInRasa(), StandInRasa(), StandInRasa(refuse=True)]
    yield servers
    for server in servers:
        server.stop()


def test_replicas_are_loaded_in_turn_and_each_checked(stand_ins):
    first, second, _ = stand_ins
    loaded = swap((first.url, second.url), "secret", Path("/m/new.tar.gz"), "new", None)
    assert [r.url for r in loaded] == [first.url, second.url]
    assert first.loaded == second.loaded == ["new"]


def test_when_a_replica_fails_the_ones_already_switched_go_back_to_the_previous_model(stand_ins):
    first, second, failing = stand_ins
    previous = publication(7, model="old")
    with pytest.raises(SwapFailed, match="put back on the previous model old"):
        swap((first.url, second.url, failing.url), "secret", Path("/m/new.tar.gz"), "new", previous)
    assert first.loaded == second.loaded == ["new", "old"]


def test_a_wrong_token_fails_the_swap_without_showing_the_token(stand_ins):
    with pytest.raises(SwapFailed) as failure:
        swap((stand_ins[0].url,), "not-the-token", Path("/m/new.tar.gz"), "new", None)
    assert "401" in str(failure.value)
    assert "not-the-token" not in str(failure.value)


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
    assert int(log.read_text().split()[-1]) == os.nice(0) + steps.NICENESS

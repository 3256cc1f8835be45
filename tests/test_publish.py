"""`python -m bot publish` against real servers: an edited response reaches both running replicas,
one at a time, with webhooks arriving all the while and none lost; rollbacks walk back through the
publications; a publish or rollback that cannot finish (wrong token, a server down, a replica that
dies, another publish running, a missing model file) changes nothing.

One bot for the module (two Rasa replicas on PostgreSQL and Redis, one action server) and one copy
of the project that the tests edit; the tests run in file order, each building on the publications
before it. The publish is the real command in a subprocess, once: it validates, trains, runs the
test stories, evaluates the candidate and the served model (bench.nlu_eval on the gate's DEV sets),
lets the gate decide and loads the candidate. What the gate refuses, what `--force` records, failing
test stories and a replica refusing the model are the same flow with the checks stubbed
(tests/test_publish_units.py); zero loss at the issue's rate is measured by `make bench-publish`
(docs/benchmarks.md).

What keeps the module within minutes:
- the copy's config.yml has the project's pipeline and policies with DIET at CHEAP_DIET_EPOCHS
  (instead of 40; the test stories still pass, rules and memoization decide every step), and the
  bot starts on a model trained from it here, with its own component cache;
- the publish edits responses only, so its training restores every component from that cache
  (config.yml's `hidden_layers_sizes`, tests/test_training_cache.py): DIET is not trained again,
  which the test checks, and the candidate's opt-out numbers are the served model's exactly.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.load import replies_by_sender
from bench.publish_load import (
    CHEAP_DIET_EPOCHS,
    copy_project,
    edit_release,
    of_release,
    summary,
    train,
    webhooks_while,
    with_epochs,
)
from bot import PROJECT_ROOT
from bot.publish import model_files
from bot.publish.gate import GATE_OPT_OUT_SET
from bot.publish.records import INITIAL, PUBLISH, ROLLBACK, Publication, exclusive, read_log
from bot.publish.replicas import loaded_model_id
from bot.whatsapp import meta_payloads as meta
from tests.e2e_checks import CONFIRM_TITLE, OPTED_OUT, asks_for_confirmation, last_text, opt_out_count
from tests.rasa_servers import APP_SECRET, AUTH_TOKEN, RunningBot, free_port, start_bot

# Per test, for a loaded machine: no assertion is about time (the durations are in docs/testing.md).
pytestmark = [pytest.mark.rasa, pytest.mark.timeout(1800)]

# What the bot may answer "hello" with before anything is published: the cheap copy's DIET may read
# it as a greeting or not understand it (nlu_fallback); either way the release edits both texts.
BEFORE = ("Hi! I'm the", "Sorry, I didn't get that.")
RATE = 2.0  # webhooks a second during the publish (make bench-publish measures at 6)


@dataclass
class Setup:
    project: Path
    models: Path
    env: dict[str, str]  # the bot's, with the copy's own component cache
    a: RunningBot
    b: RunningBot

    @property
    def log(self) -> list[Publication]:
        return read_log(self.models / "published" / "publications.jsonl")

    def urls(self, *bots: RunningBot) -> list[str]:
        return [f"--rasa-url={url(bot)}" for bot in bots]

    def command(self, *args: str) -> list[str]:
        return [
            sys.executable, "-m", "bot", "publish",
            "--project", str(self.project), "--models-dir", str(self.models), *args,
        ]  # fmt: skip

    def publish(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            self.command(*args),
            cwd=PROJECT_ROOT,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=1500,
        )

    def running(self, bot: RunningBot) -> str | None:
        return loaded_model_id(url(bot), AUTH_TOKEN)

    def served(self) -> str:
        return model_files.sha256(self.models / "current.tar.gz")


def url(bot: RunningBot) -> str:
    return f"http://127.0.0.1:{bot.rasa_port}"


def unpublished(answer: str) -> bool:
    return answer.startswith(BEFORE)


def greeting(bot: RunningBot, wa_id: str) -> str:
    assert bot.post(meta.text(wa_id, "hello")) == 200
    return last_text(bot, wa_id)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, postgres_server, redis_server) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("publish")
    project = copy_project(root / "project", cache=False)
    with_epochs(project, diet=CHEAP_DIET_EPOCHS)
    cache = root / "rasa-cache"  # the copy's own: the publish must find what this training stored
    models = root / "models"
    models.mkdir()
    served = shutil.copy2(train(project, root / "initial", cache), models / "current.tar.gz")
    switches = root / "playbooks.yml"
    switches.write_text("playbooks:\n  abandoned_cart: false\n")
    database = postgres_server.create_database()
    (root / "a").mkdir()
    a = start_bot(
        root / "a",
        model=Path(served),
        database_url=database,
        tracker_store_url=database,
        redis_url=redis_server.database_url(11),
        PLAYBOOKS_FILE=str(switches),
    )
    try:
        (root / "b").mkdir()
        b = a.start_replica(root / "b")
    except BaseException:
        a.stop()
        raise
    env = {**a.env, "RASA_CACHE_DIRECTORY": str(cache)}
    yield Setup(project=project, models=models, env=env, a=a, b=b)
    b.stop()
    a.stop()


def test_with_every_playbook_switched_off_opt_out_still_works(setup):
    bot, wa_id = setup.a, "4916300000001"
    answer = bot.post(meta.text(wa_id, "STOP"))
    assert answer == 200
    assert asks_for_confirmation(bot, wa_id)
    assert bot.post(meta.button_reply(wa_id, "/affirm", CONFIRM_TITLE)) == 200
    assert OPTED_OUT in last_text(bot, wa_id)
    assert opt_out_count(bot, wa_id) == (1, 1)

    subscribed = "4916300000002"
    assert bot.post(meta.text(subscribed, "hi")) == 200
    sent_before = len(bot.sent_to(subscribed))
    trigger = {"name": "EXTERNAL_abandoned_cart", "entities": {"cart_items": "shoes"}}
    tracker = trigger_intent(bot, subscribed, trigger)
    assert tracker["slots"]["marketing_suppressed"] == "abandoned_cart: switched off in playbooks.yml"
    assert len(bot.sent_to(subscribed)) == sent_before


def trigger_intent(bot: RunningBot, wa_id: str, body: dict) -> dict:
    request = urllib.request.Request(
        f"{url(bot)}/conversations/{wa_id}/trigger_intent?token={AUTH_TOKEN}&output_channel=whatsapp",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())["tracker"]


# --- what stops a publish before it trains anything (no training in these tests) ---


def assert_nothing_changed(setup: Setup, running: tuple[str | None, ...]) -> None:
    assert setup.log == []
    assert not (setup.models / "candidates").exists()  # stopped before training
    assert (setup.running(setup.a), setup.running(setup.b)) == running


def test_a_rollback_before_any_publication_has_nothing_to_go_back_to(setup):
    running = setup.running(setup.a), setup.running(setup.b)
    nothing = setup.publish("--rollback", *setup.urls(setup.a, setup.b))
    assert nothing.returncode == 1
    assert "NOTHING TO ROLL BACK TO" in nothing.stdout
    assert_nothing_changed(setup, running)


def test_a_wrong_token_stops_the_publish_before_training_and_is_not_printed(setup):
    running = setup.running(setup.a), setup.running(setup.b)
    refused = setup.publish(*setup.urls(setup.a, setup.b), RASA_AUTH_TOKEN="not-the-token")
    assert refused.returncode == 1
    assert "cannot reach the Rasa server" in refused.stdout and "401" in refused.stdout
    assert "not-the-token" not in refused.stdout + refused.stderr
    assert_nothing_changed(setup, running)


def test_a_replica_that_is_down_stops_the_publish_before_training(setup):
    running = setup.running(setup.a), setup.running(setup.b)
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    refused = setup.publish(*setup.urls(setup.a), f"--rasa-url={down}")
    assert refused.returncode == 1
    assert (
        f"cannot reach the Rasa server (is the bot running? right token?): GET {down}/status"
        in refused.stdout
    )
    assert_nothing_changed(setup, running)


def test_a_second_publish_or_rollback_while_one_runs_is_refused(setup):
    running = setup.running(setup.a), setup.running(setup.b)
    with exclusive(setup.models / "published"):  # the lock a running publish holds
        for args in ((), ("--rollback",)):
            busy = setup.publish(*args, *setup.urls(setup.a, setup.b))
            assert busy.returncode == 1
            assert "another publish or rollback is running" in busy.stdout
    assert_nothing_changed(setup, running)


# --- publishing ---


def test_an_edited_response_is_published_to_two_replicas_one_at_a_time_while_webhooks_keep_coming(setup):
    before = setup.running(setup.a)
    assert setup.running(setup.b) == before
    assert unpublished(greeting(setup.a, "4916300000010"))
    edit_release(setup.project, 1)

    senders = [str(4916310000000 + n) for n in range(20)]
    run = asyncio.run(
        webhooks_while(
            setup.command(*setup.urls(setup.a, setup.b)),
            setup.env,
            str(PROJECT_ROOT),
            [setup.a.webhook_url, setup.b.webhook_url],
            senders,
            APP_SECRET,
            RATE,
        )
    )

    assert run.exit_code == 0, run.output
    # Both replicas say the edited text, and run the published model.
    assert of_release(greeting(setup.a, "4916300000010"), 1)
    assert of_release(greeting(setup.b, "4916300000011"), 1)
    initial, published = setup.log
    assert setup.running(setup.a) == setup.running(setup.b) == published.model_id
    assert published.model_id == model_files.model_id(Path(published.model_file))
    # One replica at a time, in the order given.
    first, second = published.replicas
    assert [first.url, second.url] == [url(setup.a), url(setup.b)]
    # (`seconds` is rounded to the millisecond.)
    assert first.started_at + first.seconds <= second.started_at + 0.001
    # The model that ran before is publication 1, kept so that a rollback can go back to it.
    assert (initial.kind, initial.model_id, initial.previous) == (INITIAL, before, None)
    assert Path(initial.model_file).is_file()
    assert (published.kind, published.previous, published.forced) == (PUBLISH, initial.id, False)
    assert published.git_commit is None  # the copy is not a git repository
    # The gate compared real numbers on the DEV set: the served model's, then the candidate's.
    evaluation, baseline = published.evaluation, published.baseline
    assert baseline == initial.evaluation and evaluation is not None and baseline is not None
    assert evaluation.holdout == str(GATE_OPT_OUT_SET.relative_to(PROJECT_ROOT))
    assert evaluation.opt_out_examples > 0 and evaluation.non_opt_out_examples > 0
    assert published.gate_reasons == () and published.tolerance == 0.02
    # Only responses changed: every component came from the cache, DIET included, so the candidate
    # understands exactly what the served model did.
    [train_log] = (setup.models / "candidates").glob("*/train.log")
    assert "Restored component 'DIETClassifier' from cache" in train_log.read_text()
    assert "Starting to train component 'DIETClassifier'" not in train_log.read_text()
    assert evaluation == baseline
    # What a restart (or `make run`) serves is the published model.
    assert model_files.model_id(setup.models / "current.tar.gz") == published.model_id
    # No webhook was refused or left without a reply while it ran (numbers: make bench-publish).
    windows = [(r.started_at, r.started_at + r.seconds) for r in published.replicas]
    numbers = summary(run.timed, replies_by_sender(setup.a), windows)
    print("webhooks during the publish:", json.dumps(numbers), f"publish {run.seconds:.0f} s")
    assert numbers["sent"] > 0
    assert (numbers["non_200"], numbers["unanswered"]) == (0, 0)


# --- rolling back, and what stops a rollback half-way ---


def test_a_rollback_whose_model_file_is_missing_changes_nothing(setup):
    initial, _published = setup.log
    history, served = setup.log, setup.served()
    aside = Path(initial.model_file).rename(setup.models / "aside.tar.gz")
    try:
        missing = setup.publish("--rollback", *setup.urls(setup.a, setup.b))
    finally:
        aside.rename(initial.model_file)
    assert missing.returncode == 1
    assert f"NOT ROLLED BACK: the model file of publication {initial.id} is missing" in missing.stdout
    assert setup.log == history and setup.served() == served


def test_when_a_replica_dies_during_a_rollback_the_switched_one_goes_back_and_nothing_is_recorded(setup):
    """B stops the moment A starts loading, so B's turn (after A's) always fails."""
    _initial, published = setup.log
    history, served = setup.log, setup.served()
    command = setup.command("--rollback", *setup.urls(setup.a, setup.b))
    with subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        env=setup.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as rollback:
        assert rollback.stdout is not None
        lines = []
        for line in rollback.stdout:
            lines.append(line)
            if line.startswith("loading ") and f" into {url(setup.a)} " in line:
                setup.b.stop()
        code = rollback.wait(timeout=1500)
    output = "".join(lines)
    assert code == 1, output
    assert "NOT ROLLED BACK" in output and f"{url(setup.b)}/model" in output
    assert f"put back on the previous model {published.model_id}: {url(setup.a)}" in output
    assert setup.running(setup.a) == published.model_id  # A serves what it served before
    assert of_release(greeting(setup.a, "4916300000030"), 1)
    assert setup.log == history and setup.served() == served


def test_rollback_goes_back_one_publication_at_a_time(setup):
    initial, _published = setup.log  # B is gone: A alone from here

    assert setup.publish("--rollback", *setup.urls(setup.a)).returncode == 0
    assert setup.running(setup.a) == initial.model_id
    assert unpublished(greeting(setup.a, "4916300000031"))
    back = setup.log[-1]
    assert (back.kind, back.model_file, back.forced, back.previous) == (
        ROLLBACK,
        initial.model_file,
        False,
        None,
    )

    nothing = setup.publish("--rollback", *setup.urls(setup.a))
    assert nothing.returncode == 1
    assert "NOTHING TO ROLL BACK TO" in nothing.stdout
    assert [p.kind for p in setup.log] == [INITIAL, PUBLISH, ROLLBACK]
    assert model_files.model_id(setup.models / "current.tar.gz") == initial.model_id

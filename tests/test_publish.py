"""`python -m bot publish` against real servers: an edited response reaches the running bot with
webhooks arriving all the while (one replica, then two), a worse candidate is refused and loads
nothing, a forced publish is recorded, rollbacks walk back through the publications, and a publish
or rollback that cannot finish (wrong token, a server down, a replica that dies, another publish
running, a missing model file) changes nothing.

One bot for the module (two Rasa replicas on PostgreSQL and Redis, one action server) and one copy
of the project that the tests edit; the tests run in file order, each building on the publications
before it. Every publish is the real command in a subprocess: it validates, trains, runs the test
stories and evaluates (bench.nlu_eval on the gate's DEV sets). What keeps the module within minutes
is the copy's config.yml: the same pipeline and policies with fewer epochs (DIET CHEAP_DIET_EPOCHS
and TED CHEAP_TED_EPOCHS instead of 40; the test stories still pass, they check the dialogue), so a
training takes about a minute instead of ten:
- the bot starts on a model trained once from that copy (before anything is published);
- the worse candidate is the copy with DIET at WORSE_DIET_EPOCHS (a config change; everything
  else the same): measured on held-out v4 in session 5 with the project's TED, 1 epoch gave a
  false-positive rate of 0.143 against 0.081 for 5 epochs, far beyond the 0.02 tolerance (not yet
  re-measured on the DEV v5 sets with TED at 3 epochs);
- its refused publish and the forced publish of the very same files (the two-replica measurement)
  train the same inputs, so the second finds everything in Rasa's cache;
- the one-replica measurement is the first publish.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from bench.publish_load import summary, webhooks_while
from bot import PROJECT_ROOT
from bot.publish import model_files
from bot.publish.records import INITIAL, PUBLISH, ROLLBACK, Publication, exclusive, read_log
from bot.publish.replicas import loaded_model_id
from bot.publish.steps import QUIET
from bot.whatsapp import meta_payloads as meta
from tests.e2e_checks import CONFIRM_TITLE, OPTED_OUT, asks_for_confirmation, last_text, opt_out_count
from tests.rasa_servers import APP_SECRET, AUTH_TOKEN, RunningBot, free_port, start_bot

# Per test: a publish on a quiet machine takes a few minutes, but on the shared 2 cores under load
# (2026-12-02, load average 9) one took over 30 min (each check loads TensorFlow in a subprocess).
pytestmark = [pytest.mark.rasa, pytest.mark.timeout(3600)]

# What the bot may answer "hello" with before anything is published: the cheap copy's DIET may read
# it as a greeting or not understand it (nlu_fallback); either way every release edits both texts.
BEFORE = ("Hi! I'm the", "Sorry, I didn't get that.")
RATE = 6.0  # webhooks a second during a publish (the issue asks for at least 5)
RESULTS = PROJECT_ROOT / "results" / "publish_load.json"
PROJECT_FILES = ("config.yml", "domain.yml", "endpoints.yml", "data", "tests/stories")
CACHE = Path(".rasa", "cache")  # Rasa's component cache, relative to the project it trains
CHEAP_DIET_EPOCHS = 5  # of the project's 40
CHEAP_TED_EPOCHS = 3  # of the project's 40 (the test stories pass: rules and memoization carry them)
WORSE_DIET_EPOCHS = 1


@dataclass
class Setup:
    project: Path
    worse: Path  # the same copy, DIET trained for WORSE_DIET_EPOCHS
    models: Path
    a: RunningBot
    b: RunningBot

    @property
    def log(self) -> list[Publication]:
        return read_log(self.models / "published" / "publications.jsonl")

    def urls(self, *bots: RunningBot) -> list[str]:
        return [f"--rasa-url={url(bot)}" for bot in bots]

    def command(self, *args: str, project: Path | None = None) -> list[str]:
        return [
            sys.executable, "-m", "bot", "publish",
            "--project", str(project or self.project), "--models-dir", str(self.models), *args,
        ]  # fmt: skip

    def publish(self, *args: str, project: Path | None = None, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            self.command(*args, project=project),
            cwd=PROJECT_ROOT,
            env={**self.a.env, **env},
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


def copy_project(target: Path) -> Path:
    for name in PROJECT_FILES:
        source = PROJECT_ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name)
        else:
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    if (PROJECT_ROOT / CACHE).is_dir():  # filled by `make train`; absent, the first publish trains all
        shutil.copytree(PROJECT_ROOT / CACHE, target / CACHE)
    return target


def train(project: Path, out: Path, name: str) -> Path:
    command = [sys.executable, "-m", "rasa", "train", "--out", str(out), "--fixed-model-name", name]
    done = subprocess.run(
        command, cwd=project, env={**os.environ, **QUIET}, capture_output=True, text=True, timeout=3000
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out / f"{name}.tar.gz"


def initial_model(project: Path, models: Path) -> Path:
    """Trained from the cheap copy, once for its inputs: kept in models/test_publish/ under their
    digest (like `make train`, which trains again only when config, domain or data changed)."""
    digest = hashlib.sha256()
    for path in [project / "config.yml", project / "domain.yml", *sorted((project / "data").rglob("*.yml"))]:
        digest.update(path.relative_to(project).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    kept = PROJECT_ROOT / "models" / "test_publish" / f"{digest.hexdigest()[:16]}.tar.gz"
    if not kept.exists():
        kept.parent.mkdir(parents=True, exist_ok=True)
        trained = train(project, kept.parent, kept.name.removesuffix(".tar.gz"))
        assert trained == kept
    models.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy2(kept, models / "current.tar.gz"))


def with_epochs(project: Path, *, diet: int, ted: int) -> None:
    """The copy's config.yml with fewer DIET and TED epochs; every other setting as the project has it."""
    config_file = project / "config.yml"
    config = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    [diet_settings] = [c for c in config["pipeline"] if c["name"] == "DIETClassifier"]
    [ted_settings] = [p for p in config["policies"] if p["name"] == "TEDPolicy"]
    diet_settings["epochs"], ted_settings["epochs"] = diet, ted
    config_file.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")


def set_response(project: Path, response: str, text: str) -> None:
    """Replace the first (unconditional) text of a response in domain.yml."""
    domain = project / "domain.yml"
    lines = domain.read_text(encoding="utf-8").splitlines(keepends=True)
    at = next(n for n, line in enumerate(lines) if line.startswith(f"  {response}:"))
    assert lines[at + 1].startswith("    - text: "), lines[at + 1]
    lines[at + 1] = f'    - text: "{text}"\n'
    domain.write_text("".join(lines), encoding="utf-8")


def set_greeting(project: Path, text: str) -> None:
    set_response(project, "utter_greet", text)


def release(n: int) -> str:
    return f"Release {n} says hello! Ask me about orders and offers. To stop marketing messages, write STOP."


def release_1(project: Path) -> None:
    set_greeting(project, release(1))
    set_response(project, "utter_default", "Release 1 did not get that. Write STOP to stop marketing.")


def unpublished(answer: str) -> bool:
    return answer.startswith(BEFORE)


def greeting(bot: RunningBot, wa_id: str) -> str:
    assert bot.post(meta.text(wa_id, "hello")) == 200
    return last_text(bot, wa_id)


def replies_by_sender(bot: RunningBot) -> dict[str, int]:
    counts: dict[str, int] = {}
    for message in bot.graph.state.sent:
        counts[message["body"]["to"]] = counts.get(message["body"]["to"], 0) + 1
    return counts


def save_numbers(label: str, numbers: dict) -> None:
    RESULTS.parent.mkdir(exist_ok=True)
    saved = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    RESULTS.write_text(json.dumps({**saved, label: numbers}, indent=2) + "\n")
    print(label, json.dumps(numbers))


@pytest.fixture(scope="module")
def setup(tmp_path_factory, postgres_server, redis_server) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("publish")
    project = copy_project(root / "project")
    models = root / "models"
    with_epochs(project, diet=CHEAP_DIET_EPOCHS, ted=CHEAP_TED_EPOCHS)
    model = initial_model(project, models)  # what the bot runs before anything is published
    worse = root / "worse"
    shutil.copytree(project, worse)  # with the cache the first training filled
    with_epochs(worse, diet=WORSE_DIET_EPOCHS, ted=CHEAP_TED_EPOCHS)
    switches = root / "playbooks.yml"
    switches.write_text("playbooks:\n  abandoned_cart: false\n")
    database = postgres_server.create_database()
    (root / "a").mkdir()
    a = start_bot(
        root / "a",
        model=model,
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
    yield Setup(project=project, worse=worse, models=models, a=a, b=b)
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


def publish_under_load(
    setup: Setup, bots: list[RunningBot], first_sender: int, label: str, *args: str, project: Path
) -> Publication:
    senders = [str(first_sender + n) for n in range(30)]
    code, output, timed = asyncio.run(
        webhooks_while(
            setup.command(*args, *setup.urls(*bots), project=project),
            setup.a.env,
            str(PROJECT_ROOT),
            [bot.webhook_url for bot in bots],
            senders,
            APP_SECRET,
            RATE,
        )
    )
    assert code == 0, output
    publication = setup.log[-1]
    windows = [(r.started_at, r.started_at + r.seconds) for r in publication.replicas]
    numbers = summary(timed, replies_by_sender(setup.a), windows)
    save_numbers(label, numbers)
    assert numbers["sent"] >= RATE * 30  # sent from its start to its end: a publish takes minutes
    assert numbers["rate_per_s"] >= 5
    assert numbers["during_swap"]["sent"] >= len(bots)  # messages did arrive while models loaded
    assert (numbers["non_200"], numbers["unanswered"]) == (0, 0)
    return publication


def test_an_edited_response_is_published_to_one_replica_while_webhooks_keep_coming(setup):
    before = setup.running(setup.a)
    assert unpublished(greeting(setup.a, "4916300000010"))
    release_1(setup.project)

    publication = publish_under_load(setup, [setup.a], 4916310000000, "one_replica", project=setup.project)

    assert greeting(setup.a, "4916300000010").startswith("Release 1")
    initial, published = setup.log
    assert (initial.kind, initial.model_id, initial.previous) == (INITIAL, before, None)
    assert Path(initial.model_file).is_file()  # kept: a rollback can go back to it
    assert publication == published
    assert (published.kind, published.previous, published.forced) == (PUBLISH, initial.id, False)
    assert setup.running(setup.a) == published.model_id == model_files.model_id(Path(published.model_file))
    assert [r.url for r in published.replicas] == [url(setup.a)]
    assert published.evaluation is not None and published.baseline == initial.evaluation
    assert published.git_commit is None  # the copy is not a git repository
    # What a restart (or `make run`) serves is the published model.
    assert model_files.model_id(setup.models / "current.tar.gz") == published.model_id


def release_2(project: Path) -> None:
    # An undertrained model may read "hello" as anything: whatever it answers carries the release.
    set_greeting(project, release(2))
    set_response(project, "utter_default", "Release 2 did not get that. Write STOP to stop marketing.")
    set_response(project, "utter_ask_opt_out_form_opt_out_decision", "Release 2 asks: stop marketing?")


def test_a_candidate_with_a_worse_opt_out_evaluation_is_refused_and_nothing_is_loaded(setup):
    history, served = setup.log, setup.served()
    published_files = sorted((setup.models / "published").glob("*.tar.gz"))
    running = setup.running(setup.a), setup.running(setup.b)
    release_2(setup.worse)  # the edits the forced publish below then publishes (same files, same training)

    refused = setup.publish(*setup.urls(setup.a, setup.b), project=setup.worse)

    assert refused.returncode == 1, refused.stdout + refused.stderr
    # The test stories passed: the refusal is the evaluation's.
    assert "running the test stories" in refused.stdout and "failed" not in refused.stdout
    assert "NOT PUBLISHED: the opt-out evaluation is worse" in refused.stdout
    assert "by more than 0.020" in refused.stdout  # the reasons, recall and/or false-positive rate
    assert (setup.running(setup.a), setup.running(setup.b)) == running
    assert setup.log == history
    assert sorted((setup.models / "published").glob("*.tar.gz")) == published_files
    assert setup.served() == served
    assert greeting(setup.a, "4916300000015").startswith("Release 1")  # not release 2
    print(refused.stdout[-1500:])


def test_a_forced_publish_reaches_two_replicas_one_at_a_time_while_webhooks_keep_coming(setup):
    publication = publish_under_load(
        setup, [setup.a, setup.b], 4916320000000, "two_replicas", "--force", project=setup.worse
    )

    assert (publication.kind, publication.forced) == (PUBLISH, True)
    assert publication.gate_reasons
    worse, published, tolerance = publication.evaluation, publication.baseline, publication.tolerance
    assert (
        worse.recall < published.recall - tolerance
        or worse.false_positive_rate > published.false_positive_rate + tolerance
    )
    assert publication.previous == setup.log[-2].id
    assert setup.running(setup.a) == setup.running(setup.b) == publication.model_id
    assert greeting(setup.a, "4916300000020").startswith("Release 2")
    assert greeting(setup.b, "4916300000021").startswith("Release 2")  # B answers with it too
    first, second = publication.replicas
    assert first.started_at + first.seconds <= second.started_at  # one at a time


# --- rolling back, and what stops a rollback half-way ---


def test_a_rollback_whose_model_file_is_missing_changes_nothing(setup):
    _initial, release_1, _forced = setup.log
    history, served = setup.log, setup.served()
    aside = Path(release_1.model_file).rename(setup.models / "aside.tar.gz")
    try:
        missing = setup.publish("--rollback", *setup.urls(setup.a, setup.b))
    finally:
        aside.rename(release_1.model_file)
    assert missing.returncode == 1
    assert f"NOT ROLLED BACK: the model file of publication {release_1.id} is missing" in missing.stdout
    assert setup.log == history and setup.served() == served


def test_when_a_replica_dies_during_a_rollback_the_switched_one_goes_back_and_nothing_is_recorded(setup):
    """B stops the moment A starts loading, so B's turn (after A's) always fails."""
    *_, forced = setup.log
    history, served = setup.log, setup.served()
    command = setup.command("--rollback", *setup.urls(setup.a, setup.b))
    with subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        env=setup.a.env,
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
    assert f"put back on the previous model {forced.model_id}: {url(setup.a)}" in output
    assert setup.running(setup.a) == forced.model_id  # A serves what it served before
    assert greeting(setup.a, "4916300000030").startswith("Release 2")
    assert setup.log == history and setup.served() == served


def test_rollback_goes_back_one_publication_at_a_time(setup):
    initial, release_1, _forced = setup.log  # B is gone: A alone from here

    assert setup.publish("--rollback", *setup.urls(setup.a)).returncode == 0
    assert setup.running(setup.a) == release_1.model_id
    assert greeting(setup.a, "4916300000031").startswith("Release 1")
    back = setup.log[-1]
    assert (back.kind, back.model_file, back.forced, back.previous) == (
        ROLLBACK,
        release_1.model_file,
        False,
        initial.id,
    )

    assert setup.publish("--rollback", *setup.urls(setup.a)).returncode == 0
    assert setup.running(setup.a) == initial.model_id
    assert unpublished(greeting(setup.a, "4916300000032"))

    nothing = setup.publish("--rollback", *setup.urls(setup.a))
    assert nothing.returncode == 1
    assert "NOTHING TO ROLL BACK TO" in nothing.stdout
    assert [p.kind for p in setup.log] == [INITIAL, PUBLISH, PUBLISH, ROLLBACK, ROLLBACK]
    assert model_files.model_id(setup.models / "current.tar.gz") == initial.model_id

"""`python -m bot publish` against real servers: an edited response reaches the running bot with
webhooks arriving all the while (one replica, then two), a worse candidate is refused and loads
nothing, a forced publish is recorded, and rollbacks walk back through the publications.

One bot for the module (two Rasa replicas on PostgreSQL and Redis, one action server), one copy of
the project that the tests edit, and the tests run in file order, each building on the publications
before it: every publish trains a model, and sharing them keeps `make test` bearable. The copy's
first model is trained here, before the bot starts, so that its component cache makes the later
trainings reuse whatever did not change.
The evaluation is the real gate: bench.nlu_eval on the frozen held-out sets.
"""

from __future__ import annotations

import asyncio
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
from bot.publish.records import INITIAL, PUBLISH, ROLLBACK, Publication, read_log
from bot.publish.replicas import loaded_model_id
from bot.publish.steps import QUIET
from bot.whatsapp import meta_payloads as meta
from tests.e2e_checks import CONFIRM_TITLE, OPTED_OUT, asks_for_confirmation, last_text, opt_out_count
from tests.rasa_servers import APP_SECRET, AUTH_TOKEN, RunningBot, start_bot

pytestmark = [pytest.mark.rasa, pytest.mark.timeout(3000)]

GREETING = "Hi! I'm the"
RATE = 6.0  # webhooks a second during a publish (the issue asks for at least 5)
RESULTS = PROJECT_ROOT / "results" / "publish_load.json"
PROJECT_FILES = ("config.yml", "domain.yml", "endpoints.yml", "data", "tests/stories")


@dataclass
class Setup:
    project: Path
    worse: Path  # the same project with almost every opt-out example removed
    models: Path
    a: RunningBot
    b: RunningBot

    @property
    def log(self) -> list[Publication]:
        return read_log(self.models / "published" / "publications.jsonl")

    def urls(self, *bots: RunningBot) -> list[str]:
        return [f"--rasa-url=http://127.0.0.1:{bot.rasa_port}" for bot in bots]

    def command(self, *args: str, project: Path | None = None) -> list[str]:
        return [
            sys.executable, "-m", "bot", "publish",
            "--project", str(project or self.project), "--models-dir", str(self.models), *args,
        ]  # fmt: skip

    def publish(self, *args: str, project: Path | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            self.command(*args, project=project),
            cwd=PROJECT_ROOT,
            env=self.a.env,
            capture_output=True,
            text=True,
            timeout=1500,
        )

    def running(self, bot: RunningBot) -> str | None:
        return loaded_model_id(f"http://127.0.0.1:{bot.rasa_port}", AUTH_TOKEN)


def copy_project(target: Path) -> Path:
    for name in PROJECT_FILES:
        source = PROJECT_ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name)
        else:
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def train(project: Path, out: Path, name: str) -> Path:
    command = [sys.executable, "-m", "rasa", "train", "--out", str(out), "--fixed-model-name", name]
    done = subprocess.run(
        command, cwd=project, env={**os.environ, **QUIET}, capture_output=True, text=True, timeout=1500
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out / f"{name}.tar.gz"


def set_greeting(project: Path, text: str) -> None:
    domain = project / "domain.yml"
    lines = domain.read_text(encoding="utf-8").splitlines(keepends=True)
    at = next(n for n, line in enumerate(lines) if line.startswith("  utter_greet:"))
    lines[at + 1] = f'    - text: "{text}"\n'
    domain.write_text("".join(lines), encoding="utf-8")


def release(n: int) -> str:
    return f"Release {n} says hello! Ask me about orders and offers. To stop marketing messages, write STOP."


def story_opt_outs(project: Path) -> list[str]:
    """The opt-out texts the test stories type: a worse model must still pass the stories."""
    stories = yaml.safe_load((project / "tests" / "stories" / "test_opt_out.yml").read_text())["stories"]
    return sorted(
        {
            step["user"].strip()
            for story in stories
            for step in story["steps"]
            if step.get("intent") == "opt_out" and not step["user"].strip().startswith("/")
        }
    )


def keep_only_these_opt_outs(project: Path, texts: list[str]) -> None:
    """A controlled, real degradation: every opt_out example removed but the stories' own."""
    for path in (project / "data" / "nlu").rglob("*.yml"):
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        blocks = document.get("nlu") or []
        kept = [block for block in blocks if block.get("intent") != "opt_out"]
        if len(kept) != len(blocks):
            path.write_text(yaml.safe_dump({**document, "nlu": kept}, allow_unicode=True), encoding="utf-8")
    examples = "".join(f"- {text}\n" for text in texts)
    (project / "data" / "nlu" / "opt_out_stories_only.yml").write_text(
        yaml.safe_dump({"version": "3.1", "nlu": [{"intent": "opt_out", "examples": examples}]}),
        encoding="utf-8",
    )


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
    model = train(project, models, "current")  # what the bot runs before anything is published
    worse = root / "worse"
    shutil.copytree(project, worse)  # with the component cache: only the changed NLU trains again
    keep_only_these_opt_outs(worse, story_opt_outs(project))
    switches = root / "playbooks.yml"
    switches.write_text("playbooks:\n  abandoned_cart: false\n")
    url = postgres_server.create_database()
    (root / "a").mkdir()
    a = start_bot(
        root / "a",
        model=model,
        database_url=url,
        tracker_store_url=url,
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
    url = (
        f"http://127.0.0.1:{bot.rasa_port}/conversations/{wa_id}/trigger_intent"
        f"?token={AUTH_TOKEN}&output_channel=whatsapp"
    )
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())["tracker"]


def publish_under_load(setup: Setup, bots: list[RunningBot], first_sender: int, label: str) -> Publication:
    senders = [str(first_sender + n) for n in range(30)]
    code, output, timed = asyncio.run(
        webhooks_while(
            setup.command(*setup.urls(*bots)),
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
    assert numbers["sent"] >= RATE * 60  # a whole publish (training included) takes minutes
    assert numbers["rate_per_s"] >= 5
    assert numbers["during_swap"]["sent"] >= len(bots)  # messages did arrive while models loaded
    assert (numbers["non_200"], numbers["unanswered"]) == (0, 0)
    return publication


def test_an_edited_response_is_published_to_one_replica_while_webhooks_keep_coming(setup):
    before = setup.running(setup.a)
    assert GREETING in greeting(setup.a, "4916300000010")
    set_greeting(setup.project, release(1))

    publication = publish_under_load(setup, [setup.a], 4916310000000, "one_replica")

    assert greeting(setup.a, "4916300000010").startswith("Release 1 says hello!")
    initial, published = setup.log
    assert (initial.kind, initial.model_id, initial.previous) == (INITIAL, before, None)
    assert Path(initial.model_file).is_file()  # kept: a rollback can go back to it
    assert publication == published
    assert (published.kind, published.previous, published.forced) == (PUBLISH, initial.id, False)
    assert setup.running(setup.a) == published.model_id == model_files.model_id(Path(published.model_file))
    assert [r.url for r in published.replicas] == [f"http://127.0.0.1:{setup.a.rasa_port}"]
    assert published.evaluation is not None and published.baseline == initial.evaluation
    assert published.git_commit is None  # the copy is not a git repository
    # What a restart (or `make run`) serves is the published model.
    assert model_files.model_id(setup.models / "current.tar.gz") == published.model_id


def test_an_edited_response_is_published_to_two_replicas_one_at_a_time(setup):
    set_greeting(setup.project, release(2))

    publication = publish_under_load(setup, [setup.a, setup.b], 4916320000000, "two_replicas")

    assert setup.running(setup.a) == setup.running(setup.b) == publication.model_id
    assert greeting(setup.a, "4916300000020").startswith("Release 2 says hello!")
    assert greeting(setup.b, "4916300000021").startswith("Release 2 says hello!")
    first, second = publication.replicas
    assert first.started_at + first.seconds <= second.started_at  # one at a time
    assert publication.previous == setup.log[-2].id


def test_a_candidate_with_a_worse_opt_out_evaluation_is_refused_and_nothing_is_loaded(setup):
    history, served = setup.log, model_files.sha256(setup.models / "current.tar.gz")
    published_files = sorted((setup.models / "published").glob("*.tar.gz"))
    running = setup.running(setup.a), setup.running(setup.b)

    refused = setup.publish(*setup.urls(setup.a, setup.b), project=setup.worse)

    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "NOT PUBLISHED: the opt-out evaluation is worse" in refused.stdout
    assert "opt-out recall" in refused.stdout
    assert (setup.running(setup.a), setup.running(setup.b)) == running
    assert setup.log == history
    assert sorted((setup.models / "published").glob("*.tar.gz")) == published_files
    assert model_files.sha256(setup.models / "current.tar.gz") == served


def test_a_forced_publish_goes_through_and_is_recorded_as_forced(setup):
    forced = setup.publish("--force", *setup.urls(setup.a, setup.b), project=setup.worse)

    assert forced.returncode == 0, forced.stdout + forced.stderr
    publication = setup.log[-1]
    assert (publication.kind, publication.forced) == (PUBLISH, True)
    assert any("opt-out recall" in reason for reason in publication.gate_reasons)
    assert publication.evaluation.recall < publication.baseline.recall - publication.tolerance
    assert setup.running(setup.a) == setup.running(setup.b) == publication.model_id


def test_rollback_goes_back_one_publication_at_a_time(setup):
    initial, release_1, release_2, _forced = setup.log

    assert setup.publish("--rollback", *setup.urls(setup.a, setup.b)).returncode == 0
    assert setup.running(setup.a) == setup.running(setup.b) == release_2.model_id
    assert greeting(setup.b, "4916300000030").startswith("Release 2 says hello!")
    back = setup.log[-1]
    assert (back.kind, back.model_file, back.forced, back.previous) == (
        ROLLBACK,
        release_2.model_file,
        False,
        release_1.id,
    )

    assert setup.publish("--rollback", *setup.urls(setup.a, setup.b)).returncode == 0
    assert setup.running(setup.a) == setup.running(setup.b) == release_1.model_id
    assert greeting(setup.a, "4916300000031").startswith("Release 1 says hello!")

    assert setup.publish("--rollback", *setup.urls(setup.a, setup.b)).returncode == 0
    assert setup.running(setup.a) == setup.running(setup.b) == initial.model_id
    assert GREETING in greeting(setup.a, "4916300000032")

    nothing = setup.publish("--rollback", *setup.urls(setup.a, setup.b))
    assert nothing.returncode == 1
    assert "NOTHING TO ROLL BACK TO" in nothing.stdout
    assert [p.kind for p in setup.log] == [INITIAL, PUBLISH, PUBLISH, PUBLISH, ROLLBACK, ROLLBACK, ROLLBACK]
    assert model_files.model_id(setup.models / "current.tar.gz") == initial.model_id

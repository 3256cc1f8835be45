"""A real bot for end-to-end tests and benchmarks: action server + Rasa server + fake Graph API.

Everything runs on loopback with a throwaway SQLite database (customer store and tracker store),
the trained model from `make train`, and the project's own credentials.yml and endpoints.yml; only
the secrets, the stores' URLs and the Graph API URL come from the environment, as in production.
The servers are started with the runner's own command lines (`bot.processes`), on 127.0.0.1.
`start_bot_on(workdir, postgres_url, redis_url)` puts the bot on PostgreSQL and Redis instead, and
`RunningBot.start_replica` adds a second Rasa server on the same stores.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bot import PROJECT_ROOT
from bot.fake_graph_api import FakeGraphServer
from bot.migrations import upgrade
from bot.processes import Ports, actions_command, rasa_command
from bot.whatsapp.signature import HEADER, sign

MODEL = PROJECT_ROOT / "models" / "current.tar.gz"
APP_SECRET = "e2e-app-secret"
ACCESS_TOKEN = "e2e-access-token"
AUTH_TOKEN = "e2e-rasa-token"
ACTION_SERVER_TOKEN = "e2e-action-server-token"
OPT_OUT_LINK_SECRET = "e2e-opt-out-link-secret"
# Loading the model takes ~30 s on an idle machine, minutes on a busy shared one.
STARTUP_TIMEOUT = 600.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, process: subprocess.Popen, log: Path, timeout: float = STARTUP_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"{process.args[:3]} exited with {process.returncode}:\n{log.read_text()[-4000:]}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not come up in {timeout}s:\n{log.read_text()[-4000:]}")


@dataclass
class RunningBot:
    workdir: Path
    database_url: str
    graph: FakeGraphServer
    rasa_port: int
    actions_port: int
    model: Path = MODEL
    extra_env: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    tracker_store_url: str | None = None  # None: SQLite in workdir
    redis_url: str | None = None  # None: in-memory locks
    owns_graph: bool = True  # False for a replica: the first bot stops the shared fake Graph API
    credentials: str = "credentials.yml"  # relative to the project root

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "ACTIONS_PORT": str(self.actions_port),
            "TRACKER_STORE_URL": self.tracker_store_url or f"sqlite:///{self.workdir / 'tracker.sqlite3'}",
            "REDIS_URL": self.redis_url or "",  # empty: unset, whatever the caller's shell says
            # where `python -m bot broadcast` finds this bot's Rasa HTTP API
            "RASA_PORT": str(self.rasa_port),
            "RASA_AUTH_TOKEN": AUTH_TOKEN,
            "ACTION_SERVER_TOKEN": ACTION_SERVER_TOKEN,
            # Both servers need the same key (the action server signs links, Rasa's channel checks
            # them); without it each would fall back to the one kept in the project's var/.
            "OPT_OUT_LINK_SECRET": OPT_OUT_LINK_SECRET,
            "WHATSAPP_APP_SECRET": APP_SECRET,
            "WHATSAPP_VERIFY_TOKEN": "e2e-verify-token",
            "WHATSAPP_ACCESS_TOKEN": ACCESS_TOKEN,
            "WHATSAPP_PHONE_NUMBER_ID": "106540352242922",
            "WHATSAPP_API_URL": self.graph.api_url,
            "RASA_TELEMETRY_ENABLED": "false",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            **self.extra_env,
        }

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.rasa_port}/webhooks/whatsapp/webhook"

    @property
    def ports(self) -> Ports:
        return Ports(rasa=self.rasa_port, actions=self.actions_port)

    def start_actions(self) -> None:
        """The action server as `python -m bot run` starts it (its command line, secret by environment)."""
        log = self.workdir / "actions.log"
        self.processes["actions"] = subprocess.Popen(
            actions_command(self.ports),
            cwd=PROJECT_ROOT,
            env=self.env,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        _wait_for(f"http://127.0.0.1:{self.actions_port}/health", self.processes["actions"], log)

    def start_rasa(self) -> None:
        """Rasa as `python -m bot run` starts it; the stores follow TRACKER_STORE_URL and REDIS_URL."""
        log = self.workdir / "rasa.log"
        self.processes["rasa"] = subprocess.Popen(
            rasa_command(self.ports, str(self.model), credentials=self.credentials),
            cwd=PROJECT_ROOT,
            env=self.env,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        _wait_for(f"http://127.0.0.1:{self.rasa_port}/status?token={AUTH_TOKEN}", self.processes["rasa"], log)

    def start_replica(self, workdir: Path) -> RunningBot:
        """Another Rasa server on the same stores, action server and fake Graph API; its log in workdir."""
        replica = dataclasses.replace(
            self,
            workdir=workdir,
            rasa_port=free_port(),
            processes={},
            owns_graph=False,
            tracker_store_url=self.env["TRACKER_STORE_URL"],  # not a file in the replica's workdir
        )
        try:
            replica.start_rasa()
        except BaseException:
            replica.stop()
            raise
        return replica

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self.owns_graph:
            self.graph.stop()

    def post(self, payload: Any) -> int:
        """POST a webhook signed like Meta signs it; returns the HTTP status."""
        body = json.dumps(payload).encode()
        return post_status(self.webhook_url, body, {HEADER: sign(body, APP_SECRET)})

    def sent_to(self, wa_id: str) -> list[dict[str, Any]]:
        """Bodies sent to a phone number (`to`) or a BSUID (`recipient`)."""
        return [
            m["body"]
            for m in self.graph.state.sent
            if wa_id in (m["body"].get("to"), m["body"].get("recipient"))
        ]

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "bot", *args],
            cwd=PROJECT_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )


def new_bot(
    workdir: Path,
    *,
    model: Path = MODEL,
    database_url: str | None = None,
    tracker_store_url: str | None = None,
    redis_url: str | None = None,
    credentials: str = "credentials.yml",
    **extra_env: str,
) -> RunningBot:
    """A bot not started yet: its customer store migrated (SQLite in workdir unless database_url
    says otherwise; conversations likewise, in-memory locks unless redis_url), the fake Graph API
    running and its ports chosen. `start_bot` starts it; a test may start it its own way."""
    if not model.exists():
        raise RuntimeError(f"{model} is missing: run `make train` (make test does it first)")
    database_url = database_url or f"sqlite:///{workdir / 'bot.sqlite3'}"
    upgrade(database_url)
    return RunningBot(
        workdir=workdir,
        database_url=database_url,
        graph=FakeGraphServer(token=ACCESS_TOKEN).start(),
        rasa_port=free_port(),
        actions_port=free_port(),
        model=model,
        extra_env=extra_env,
        tracker_store_url=tracker_store_url,
        redis_url=redis_url,
        credentials=credentials,
    )


def start_bot(workdir: Path, **options: Any) -> RunningBot:
    """`new_bot(workdir, **options)` with its action server and Rasa server started."""
    bot = new_bot(workdir, **options)
    try:
        bot.start_actions()
        bot.start_rasa()
    except BaseException:
        bot.stop()
        raise
    return bot


def start_bot_on(workdir: Path, postgres_url: str, redis_url: str, model: Path = MODEL) -> RunningBot:
    """The bot as production runs it: customers and conversations in one PostgreSQL database,
    the conversations' locks in Redis (replicas: `RunningBot.start_replica`)."""
    return start_bot(
        workdir, model=model, database_url=postgres_url, tracker_store_url=postgres_url, redis_url=redis_url
    )


def module_bot(name: str, **options: Any) -> Any:
    """A module-scoped `bot` fixture: `start_bot(options)` in a folder named `name`, stopped after
    the module's tests. In a test module: `bot = module_bot("e2e")`."""

    @pytest.fixture(scope="module")
    def bot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBot]:
        running = start_bot(tmp_path_factory.mktemp(name), **options)
        yield running
        running.stop()

    return bot


@contextmanager
def bot_in_scratch(prefix: str, **options: Any) -> Iterator[RunningBot]:
    """`start_bot` in a temporary folder, for a benchmark: stopped and the folder deleted afterwards."""
    with tempfile.TemporaryDirectory(prefix=prefix) as scratch:
        bot = start_bot(Path(scratch), **options)
        try:
            yield bot
        finally:
            bot.stop()


def post_status(url: str, body: bytes, headers: dict[str, str] | None = None) -> int:
    """POST a JSON body; the HTTP status, an error's too (the servers' refusals are what tests check)."""
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json", **(headers or {})}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code

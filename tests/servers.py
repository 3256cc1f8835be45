"""Throwaway servers for tests: a private PostgreSQL and a private Redis on loopback, in temp directories."""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest
import redis
from sqlalchemy import create_engine, text

T = TypeVar("T")

# initdb refuses to run as root; the Debian package creates this system user.
NON_ROOT_USER = "postgres"
SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    # Durability is pointless for a throwaway server and costs seconds per test run.
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
}


class ServerUnavailable(RuntimeError):
    """A server cannot be run on this machine: tests should skip (`or_skip`), not fail."""

    missing = "a server"  # what to install, for the skip's reason


class PostgresUnavailable(ServerUnavailable):
    """The binaries (or a user allowed to run them) are missing."""

    missing = "PostgreSQL binaries not found (apt-get install postgresql)"


class RedisUnavailable(ServerUnavailable):
    """redis-server is missing."""

    missing = "Redis not found (apt-get install redis-server)"


@contextmanager
def or_skip(server: AbstractContextManager[T]) -> Iterator[T]:
    """A server for a test (`with or_skip(postgres_server()) as server:`): where it cannot run
    here, the test is skipped, saying what is missing."""
    try:
        with server as running:
            yield running
    except ServerUnavailable as reason:
        pytest.skip(f"{reason.missing}: {reason}")


@dataclass
class PostgresServer:
    url: str  # the server's own `postgres` database, as the trusted superuser
    # how to stop and start this very server again (fault tests take the database away)
    _pg_ctl: list[str] = field(default_factory=list)
    _names: Iterator[int] = field(default_factory=itertools.count)

    def create_database(self) -> str:
        """A new empty database on this server; its URL."""
        name = f"test_{next(self._names)}"
        engine = create_engine(self.url, future=True, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            engine.dispose()
        return self.url.rsplit("/", 1)[0] + f"/{name}"

    def stop(self) -> None:
        """Stop the server the way an outage would: open connections are cut, new ones refused."""
        _run([*self._pg_ctl, "-m", "fast", "stop"])

    def start(self) -> None:
        """Start it again on the same port, with the same data."""
        _run([*self._pg_ctl, "-w", "-t", "60", "start"])


def postgres_bindir() -> Path:
    """The newest /usr/lib/postgresql/*/bin with initdb and pg_ctl, else the ones on PATH."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda path: int(Path(path).parent.name) if Path(path).parent.name.isdigit() else 0,
        reverse=True,
    )
    for bindir in candidates:
        if all(os.access(Path(bindir, tool), os.X_OK) for tool in ("initdb", "pg_ctl")):
            return Path(bindir)
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl and Path(initdb).parent == Path(pg_ctl).parent:
        return Path(initdb).parent
    raise PostgresUnavailable("no initdb and pg_ctl under /usr/lib/postgresql/*/bin or on PATH")


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """Start a private server (trust auth, loopback and a socket in its own temp dir) and stop it
    and delete everything afterwards. Raises PostgresUnavailable when it cannot be run here."""
    bindir = postgres_bindir()
    prefix: list[str] = []
    owner = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam(NON_ROOT_USER)
        except KeyError:
            raise PostgresUnavailable(
                f"running as root and there is no {NON_ROOT_USER!r} user to run initdb as"
            ) from None
        prefix = ["runuser", "-u", NON_ROOT_USER, "--"]
    root = Path(tempfile.mkdtemp(prefix="pg-test-"))
    data = root / "data"
    try:
        if owner is not None:
            os.chown(root, owner.pw_uid, owner.pw_gid)
        initdb = ["-D", str(data), "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--no-sync"]
        _run([*prefix, str(bindir / "initdb"), *initdb])
        port = _free_port()
        options = f"-k {root} -p {port} " + " ".join(
            f"-c {name}={value}" for name, value in SERVER_SETTINGS.items()
        )
        log = root / "server.log"
        pg_ctl = [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options]
        _run([*pg_ctl, "-w", "-t", "60", "start"], log)
        try:
            yield PostgresServer(f"postgresql://postgres@127.0.0.1:{port}/postgres", pg_ctl)
        finally:
            # A fault test may have left it stopped; a second stop then fails, harmlessly.
            subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True, check=False)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@dataclass(frozen=True)
class RedisServer:
    url: str  # redis://127.0.0.1:<port>/0

    def database_url(self, db: int) -> str:
        """The URL of another of the server's numbered databases (one per test keeps keys apart)."""
        return self.url.rsplit("/", 1)[0] + f"/{db}"


@contextmanager
def redis_server() -> Iterator[RedisServer]:
    """Start a private redis-server on loopback (no persistence, its files in a temp dir) and stop
    it afterwards. Raises RedisUnavailable when redis-server is not installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RedisUnavailable("redis-server is not on PATH")
    root = Path(tempfile.mkdtemp(prefix="redis-test-"))
    port = _free_port()
    log = root / "server.log"
    command = [
        binary, "--port", str(port), "--bind", "127.0.0.1",
        "--save", "", "--appendonly", "no", "--dir", str(root), "--logfile", str(log),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        _wait_for_redis(port, process, log)
        yield RedisServer(f"redis://127.0.0.1:{port}/0")
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(root, ignore_errors=True)


def _wait_for_redis(port: int, process: subprocess.Popen, log: Path, timeout: float = 30.0) -> None:
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                server_log = log.read_text(errors="replace") if log.exists() else ""
                raise RuntimeError(f"redis-server exited with {process.returncode}:\n{server_log}")
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError(f"redis-server did not answer on port {port} within {timeout}s")
    finally:
        client.close()


def _run(command: list[str], log: Path | None = None) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        server_log = log.read_text(errors="replace") if log and log.exists() else ""
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr}{server_log}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]

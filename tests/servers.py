"""Throwaway database servers for tests: a private PostgreSQL on loopback in a temp directory."""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import create_engine, text

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


class PostgresUnavailable(RuntimeError):
    """The binaries (or a user allowed to run them) are missing: tests should skip, not fail."""


@dataclass
class PostgresServer:
    url: str  # the server's own `postgres` database, as the trusted superuser
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
        start = ["-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start"]
        _run([*prefix, str(bindir / "pg_ctl"), *start], log)
        try:
            yield PostgresServer(f"postgresql://postgres@127.0.0.1:{port}/postgres")
        finally:
            _run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"])
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _run(command: list[str], log: Path | None = None) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        server_log = log.read_text(errors="replace") if log and log.exists() else ""
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr}{server_log}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]

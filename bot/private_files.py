"""Local state (var/, SQLite files) holds phone numbers, conversations and secrets: only the user
the bot runs as may read it, whatever the umask. var/ is 0700, SQLite files are 0600.

SQLite creates its -wal, -shm and -journal files with the mode of the database file, so creating
the database file 0600 before SQLite (or Rasa) first opens it is enough for all of them. Files and
folders left by an older version, created with the umask's 0644/0755, are tightened on the next start.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.engine import make_url

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def private_dir(path: Path) -> Path:
    """Create the folder, or tighten it, so that only its owner can list or enter it."""
    path.mkdir(mode=PRIVATE_DIR_MODE, exist_ok=True)
    _tighten(path, PRIVATE_DIR_MODE)
    return path


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL; None for other databases, in-memory and URI filenames."""
    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:"):
        return None  # a URI filename (?uri=true): SQLite reads the path and its options itself
    return Path(database)


def private_sqlite_file(url: str) -> None:
    """Before the first connection to `url`: a SQLite database file (and its companions) 0600."""
    path = sqlite_file(url)
    if path is None or not path.parent.is_dir():
        return  # not a file database, or SQLite will refuse the missing folder itself
    # O_CREAT with 0600: an empty file is a valid, empty SQLite database.
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, PRIVATE_FILE_MODE))
    for candidate in (path, *(path.with_name(path.name + suffix) for suffix in SQLITE_COMPANIONS)):
        if candidate.exists():
            _tighten(candidate, PRIVATE_FILE_MODE)


def _tighten(path: Path, mode: int) -> None:
    """Take away every permission bit outside `mode`; never add one."""
    try:
        current = path.stat().st_mode & 0o777
        if current & ~mode:
            os.chmod(path, current & mode)
    except PermissionError:
        pass  # someone else's file (a shared database set up by an administrator): theirs to set

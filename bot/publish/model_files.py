"""Model archives: the fingerprint Rasa reports for them, their digest, and the published copies.

Published copies live in one directory (`models/published/` by default) that every Rasa replica
must be able to read at the same absolute path: `PUT /model` names a file, and each replica opens it
on its own filesystem. Replicas on other hosts need that directory on shared storage (NFS, a
mounted volume) at the same path. Published files are never overwritten or deleted by publishing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
from datetime import datetime
from pathlib import Path

from bot import PROJECT_ROOT
from bot.settings import Settings, from_env

PUBLISHED_DIR = "published"


def models_dir(settings: Settings | None = None) -> Path:
    """MODELS_DIR, else models/: the published copies (PUBLISHED_DIR), their log and the served
    current.tar.gz. With replicas on several hosts: shared storage, mounted at the same path."""
    configured = (settings or from_env()).models_dir
    return Path(configured) if configured else PROJECT_ROOT / "models"


def model_id(archive: Path) -> str:
    """The `model_id` Rasa wrote into the archive's metadata at training: what GET /status reports."""
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            if member.name.lstrip("/") == "metadata.json":
                metadata = tar.extractfile(member)
                if metadata is not None:
                    return str(json.load(metadata)["model_id"])
    raise ValueError(f"{archive} is not a Rasa model: no metadata.json")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def published_name(at: datetime, fingerprint: str) -> str:
    """Sortable by time, unique per trained model: 20261201-184500-7d289ef1.tar.gz."""
    return f"{at:%Y%m%d-%H%M%S}-{fingerprint[:8]}.tar.gz"


def copy_atomically(source: Path, target: Path) -> Path:
    """Copy under a temporary name in the target's directory, then rename: a reader (a replica
    loading it, `make run` starting) never sees half a file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    shutil.copyfile(source, partial)
    os.replace(partial, target)
    return target

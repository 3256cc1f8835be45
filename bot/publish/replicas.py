"""Rasa's HTTP API as publishing uses it: load a model file, and ask which model is loaded.

The token goes in the query string, which is how Rasa 3.6 takes it (`?token=`); it is never printed
or recorded (errors name the replica's URL without it).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

from bot.publish.records import Replica

# Loading a model takes seconds to a minute on a busy machine: Rasa answers the PUT when it is done.
LOAD_TIMEOUT_S = 600.0
STATUS_TIMEOUT_S = 30.0


class ReplicaError(RuntimeError):
    """A replica refused the model, could not be reached, or reports another model."""


def _call(base_url: str, token: str, method: str, path: str, body: dict | None, timeout: float) -> bytes:
    url = f"{base_url.rstrip('/')}{path}?{urlencode({'token': token})}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.read()
    except urllib.error.HTTPError as error:
        detail = error.read().decode(errors="replace")[:500]
        raise ReplicaError(f"{method} {base_url}{path}: HTTP {error.code} {detail}") from None
    except OSError as error:
        raise ReplicaError(f"{method} {base_url}{path}: {error}") from None


def loaded_model_id(base_url: str, token: str) -> str | None:
    """The model_id of the model the replica runs (`GET /status`)."""
    status = json.loads(_call(base_url, token, "GET", "/status", None, STATUS_TIMEOUT_S))
    return status.get("model_id")


def load(base_url: str, token: str, model_file: Path, expected_model_id: str) -> Replica:
    """`PUT /model` with the file's absolute path (the replica opens it itself), then check that
    `GET /status` reports the expected model: a 204 alone does not prove the swap happened."""
    started_at = time.time()
    started = time.monotonic()
    _call(base_url, token, "PUT", "/model", {"model_file": str(model_file.resolve())}, LOAD_TIMEOUT_S)
    running = loaded_model_id(base_url, token)
    if running != expected_model_id:
        raise ReplicaError(f"{base_url} reports model {running} after loading {expected_model_id}")
    return Replica(url=base_url, started_at=started_at, seconds=round(time.monotonic() - started, 3))

"""tests/servers.py's `or_skip`: a server this machine cannot run skips the test, saying what is missing."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.servers import PostgresUnavailable, RedisUnavailable, or_skip


@contextmanager
def unavailable(error: Exception) -> Iterator[str]:
    raise error
    yield "never"


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (
            PostgresUnavailable("no initdb on PATH"),
            "PostgreSQL binaries not found (apt-get install postgresql): no initdb",
        ),
        (
            RedisUnavailable("redis-server is not on PATH"),
            "Redis not found (apt-get install redis-server): redis-server",
        ),
    ],
)
def test_a_server_that_cannot_run_here_skips_the_test_with_what_is_missing(error, reason):
    with pytest.raises(pytest.skip.Exception, match=re.escape(reason)), or_skip(unavailable(error)):
        pass


def test_a_running_server_is_handed_over_and_other_errors_still_fail():
    @contextmanager
    def running() -> Iterator[str]:
        yield "redis://127.0.0.1:6379/0"

    with or_skip(running()) as url:
        assert url == "redis://127.0.0.1:6379/0"
    with pytest.raises(ValueError), or_skip(running()):
        raise ValueError("a failing test fails")

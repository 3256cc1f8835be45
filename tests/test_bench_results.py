"""bench/results.py: a benchmark's --json file, and its scratch folder kept when it failed."""

from __future__ import annotations

import json
import shutil

import pytest

from bench.results import scratch_kept_on_failure, write_json


def test_the_numbers_are_written_as_utf8_json_in_a_folder_made_for_them(tmp_path):
    path = tmp_path / "results" / "run.json"
    write_json(path, {"language": "português", "p50_ms": 12.5})
    assert json.loads(path.read_text(encoding="utf-8")) == {"language": "português", "p50_ms": 12.5}
    assert "português" in path.read_text(encoding="utf-8")


def test_no_path_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_json(None, {"p50_ms": 12.5})
    assert list(tmp_path.iterdir()) == []


def test_the_scratch_folder_goes_after_a_run_and_stays_with_its_logs_after_a_failure(capsys):
    with scratch_kept_on_failure("bench-test-") as done:
        (done / "server.log").write_text("fine")
    assert not done.exists()

    with pytest.raises(RuntimeError), scratch_kept_on_failure("bench-test-") as failed:
        (failed / "server.log").write_text("why it failed")
        raise RuntimeError("the bot did not start")
    try:
        assert (failed / "server.log").read_text() == "why it failed"
        assert f"server logs kept in {failed}" in capsys.readouterr().err
    finally:
        shutil.rmtree(failed)

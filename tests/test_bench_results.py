"""bench/results.py: a benchmark's --json file."""

from __future__ import annotations

import json

from bench.results import write_json


def test_the_numbers_are_written_as_utf8_json_in_a_folder_made_for_them(tmp_path):
    path = tmp_path / "results" / "run.json"
    write_json(path, {"language": "português", "p50_ms": 12.5})
    assert json.loads(path.read_text(encoding="utf-8")) == {"language": "português", "p50_ms": 12.5}
    assert "português" in path.read_text(encoding="utf-8")


def test_no_path_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_json(None, {"p50_ms": 12.5})
    assert list(tmp_path.iterdir()) == []

"""Where a benchmark's numbers go besides the terminal: `--json FILE`, for docs/benchmarks.md and
for comparing one run with the next."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_json(path: Path | None, numbers: Any) -> None:
    """The numbers as indented UTF-8 JSON in `path` (its folder made when missing); None: nowhere."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(numbers, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

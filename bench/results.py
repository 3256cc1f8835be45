"""What a benchmark leaves behind besides the terminal: its numbers (`--json FILE`, for
docs/benchmarks.md and for comparing one run with the next), and its servers' logs when it failed."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def write_json(path: Path | None, numbers: Any) -> None:
    """The numbers as indented UTF-8 JSON in `path` (its folder made when missing); None: nowhere."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(numbers, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


@contextmanager
def scratch_kept_on_failure(prefix: str) -> Iterator[Path]:
    """A temporary folder for the servers' files: deleted after a run, kept (and named on stderr)
    when the run failed, because the servers' logs in it say why."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield workdir
    except BaseException:
        print(f"server logs kept in {workdir}", file=sys.stderr)
        raise
    shutil.rmtree(workdir)

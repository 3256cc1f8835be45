"""The project's YAML files as the bot reads them (domain.yml, quick_replies.yml): parsed with
libyaml when PyYAML has it, and once per version of a file.

Every WhatsApp channel reads domain.yml three times (button payloads, the unsupported-message
replies, the business name); with PyYAML's pure-Python parser that was most of the cost of
creating one, in each test that does. The documents are shared: callers only read them.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

# The C parser reads the same documents as the pure-Python one, about ten times faster.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load(path: Path) -> Any:
    """The file's document (None for an empty file); OSError and yaml.YAMLError as yaml would."""
    stat = path.stat()
    return _parse(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=16)
def _parse(path: str, mtime_ns: int, size: int) -> Any:
    # mtime and size are in the key so that an edited file is read again.
    return yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_Loader)

"""What the browser tests share: Debian's chromium, playwright-core from tests/browser/package-lock.json
(npm ci), and where screenshots go. Without chromium, node or npm a test is skipped with the reason
(`.ci/run` installs them)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from bot import PROJECT_ROOT

BROWSER_DIR = PROJECT_ROOT / "tests" / "browser"
SCREENSHOTS = PROJECT_ROOT / "results" / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def playwright_dir() -> Path:
    """tests/browser with its node_modules up to date, or a skip saying what is missing."""
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if not Path(CHROMIUM).exists():
        missing.append(CHROMIUM)
    if missing:
        pytest.skip(f"browser test needs {', '.join(missing)} (apt-get install chromium nodejs npm)")
    installed = BROWSER_DIR / "node_modules" / ".package-lock.json"
    lock = BROWSER_DIR / "package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime:
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=BROWSER_DIR,
            check=True,
            timeout=300,
        )
    return BROWSER_DIR

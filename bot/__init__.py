"""WhatsApp opt-out bot: Cloud API connector, customer store, broadcasts and CLI for a Rasa project."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Local state (SQLite files, generated tokens) lives here; the folder is git-ignored.
VAR_DIR = PROJECT_ROOT / "var"

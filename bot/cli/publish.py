"""`python -m bot publish` (`make publish`): check, gate and load a new model into the running bot.

See bot/publish/ and docs/conversation-design.md. Exit code 0 when published (or rolled back), 1 when
refused or failed; a refusal loads nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bot import PROJECT_ROOT
from bot.processes import Ports, auth_token
from bot.publish.gate import TOLERANCE
from bot.publish.model_files import models_dir
from bot.publish.records import PublishBusy


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "publish",
        help="train, check and evaluate a candidate model, then load it into every running Rasa "
        "server one at a time (no restart); --rollback goes back to the previous publication",
    )
    parser.add_argument(
        "--rasa-url",
        action="append",
        help="a running Rasa server (default http://127.0.0.1:$RASA_PORT); repeat for each replica. "
        "The token is RASA_AUTH_TOKEN or var/rasa_auth_token, never an argument",
    )
    parser.add_argument(
        "--rollback", action="store_true", help="reload the publication before the current one instead"
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="publish even when the opt-out evaluation is worse than the published model's (recorded "
        "as forced); validation and test stories must still pass",
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=TOLERANCE,
        help=f"how much lower recall / higher false-positive rate is accepted (default {TOLERANCE})",
    )
    parser.add_argument(
        "--project", type=Path, default=PROJECT_ROOT, help="the project to train from (default: this one)"
    )
    parser.add_argument(
        "--models-dir",
        type=Path,
        default=models_dir(),
        help="published models, their log and current.tar.gz (default: MODELS_DIR or models/)",
    )
    parser.set_defaults(handler=_publish)


def _publish(args: argparse.Namespace) -> int:
    from bot.publish import flow  # imports the publish machinery only when publishing

    settings = flow.Settings(
        project=args.project.resolve(),
        models_dir=args.models_dir.resolve(),
        rasa_urls=tuple(args.rasa_url or [f"http://127.0.0.1:{Ports.from_env().rasa}"]),
        token=auth_token(),
        force=args.force,
        tolerance=args.tolerance,
    )
    try:
        return flow.rollback(settings) if args.rollback else flow.publish(settings)
    except PublishBusy as busy:
        print(f"NOT PUBLISHED: {busy}; nothing was changed")
        return 1

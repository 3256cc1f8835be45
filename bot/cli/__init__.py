"""Command line: each topic is a module with `register(subparsers)`; handlers return an exit code."""

from __future__ import annotations

import argparse
import logging

from bot.cli import broadcast, customers, db, publish, run, templates

TOPICS = (db, customers, run, broadcast, templates, publish)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot", description="WhatsApp opt-out bot: database, customers and processes."
    )
    subparsers = parser.add_subparsers(dest="topic", required=True, metavar="COMMAND")
    for topic in TOPICS:
        topic.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    return int(args.handler(args) or 0)

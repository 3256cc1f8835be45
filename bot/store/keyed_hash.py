"""The keyed hash of an identifier: what the suppression list keeps of a forgotten customer.

HMAC-SHA256 with SUPPRESSION_SECRET (or a random key kept in var/, like the other generated
secrets, bot/processes.py) over `kind:value`. Every identity row carries its hash from the moment
it is recorded (`customer_identities.keyed_hash`), so that the consent rule can match a customer's
identifiers against the suppression list in SQL (bot.consent). After `customers forget` only the
hash remains: without the key nobody can test a phone number against the list (a plain SHA-256 of
a phone number is undone by trying all numbers of a country in minutes).

The key must be the same for every process that records identities or reads the list (Rasa, the
action server, the command line), and must never change: a new key makes every hash on the list
unmatchable, and forgotten customers reachable again.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from bot.processes import suppression_secret
from bot.store.identifiers import Identifier


def keyed_hash(secret: bytes, identifier: Identifier) -> str:
    """Pure: 64 hex characters; the same identifier and key always give the same hash."""
    message = f"{identifier.kind}:{identifier.value}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def secret(environ: Mapping[str, str] | None = None) -> bytes:
    """SUPPRESSION_SECRET, or the generated one in var/ (read each time: tests change the environment)."""
    return suppression_secret(environ).encode()


def hash_of(identifier: Identifier) -> str:
    """The identifier's keyed hash with this process's key."""
    return keyed_hash(secret(), identifier)

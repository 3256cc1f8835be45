"""PostgreSQL in production: migrations run as the tables' owner, the bot as a role with grants only.

The consent triggers (migrations 0002, 0004) stop the bot's own code, a script or a console session
from changing or removing an opt-out. But a table's owner may `ALTER TABLE ... DISABLE TRIGGER`,
`DROP TRIGGER` or drop the table, so the role the bot runs as must not own them (nor be a
superuser, which bypasses everything). `python -m bot db grant --role ROLE`, run as the owner
after `db upgrade`, gives that role exactly what the bot needs: no DELETE or UPDATE on tags and
the consent history, no DELETE on opt-out requests or identities, no TRUNCATE, DDL or REFERENCES
anywhere, and only SELECT on erasures and the suppression list: `customers forget` is run as the
owner (migration 0006 explains the erasure path through the guards).

Rasa's tracker store (table `events`) creates its table when Rasa starts, which a role without
CREATE cannot do. So `grant` creates it here, as the owner, from Rasa's own model, when the
conversations are kept in the same database (the documented set-up: TRACKER_STORE_URL is
DATABASE_URL with the bot role's credentials); Rasa then finds it and only reads and appends.
"""

from __future__ import annotations

import re

from sqlalchemy import text
from sqlalchemy.engine import Connection

# Rasa's SQLTrackerStore table (rasa/core/tracker_store.py, SQLEvent): it only appends and reads.
TRACKER_EVENTS = "events"

# Table -> what the bot does with it. Anything not listed here the bot role cannot touch.
BOT_PRIVILEGES: dict[str, tuple[str, ...]] = {
    # webhook dedupe records: a failed turn deletes its claim so that WhatsApp's retry is processed
    "inbound_messages": ("SELECT", "INSERT", "UPDATE", "DELETE"),
    "message_statuses": ("SELECT", "INSERT", "UPDATE"),
    "customers": ("SELECT", "INSERT", "UPDATE"),  # names, seen times, merged_into change; never deleted
    # UPDATE: last seen, and active -> superseded (the triggers allow no more); never deleted
    "customer_identities": ("SELECT", "INSERT", "UPDATE"),
    "customer_merges": ("SELECT", "INSERT"),
    "unidentified_events": ("SELECT", "INSERT", "UPDATE"),
    "tags": ("SELECT", "INSERT"),
    "consent_events": ("SELECT", "INSERT"),
    "opt_out_requests": ("SELECT", "INSERT", "UPDATE"),  # UPDATE resolves (the trigger allows no more)
    # Read by the consent rule; only `customers forget`, run as the owner, writes them (an erasure
    # is an operator's act, and the guards let a customer be marked erased only with its record).
    "erasures": ("SELECT",),
    "suppressions": ("SELECT",),
    "broadcasts": ("SELECT", "INSERT", "UPDATE"),
    "broadcast_deliveries": ("SELECT", "INSERT", "UPDATE"),
    "send_rate_buckets": ("SELECT", "INSERT", "UPDATE"),  # the shared send rate (bot/broadcast/pacing.py)
    TRACKER_EVENTS: ("SELECT", "INSERT"),
}

_ROLE = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class GrantRefused(RuntimeError):
    """The role would keep powers that defeat the guards, or the database is not ready."""


def grant_statements(role: str) -> list[str]:
    """Pure: the SQL that leaves `role` with BOT_PRIVILEGES and nothing else on our tables."""
    if not _ROLE.fullmatch(role):
        raise ValueError(f"role name {role!r}: lower-case letters, digits and '_' (at most 63)")
    quoted = f'"{role}"'
    return [
        # Start from nothing, whatever earlier grants (or a previous layout) left behind.
        f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {quoted}",
        f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {quoted}",
        f"REVOKE CREATE ON SCHEMA public FROM {quoted}",
        f"GRANT USAGE ON SCHEMA public TO {quoted}",
        *(
            f"GRANT {', '.join(privileges)} ON {table} TO {quoted}"
            for table, privileges in BOT_PRIVILEGES.items()
        ),
        # nextval() for the serial ids (and Rasa's events_seq); USAGE allows nothing else.
        f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {quoted}",
    ]


def grant(conn: Connection, role: str) -> None:
    """Run as the owner of the tables, on a database migrated to head."""
    if conn.dialect.name != "postgresql":
        raise GrantRefused("roles and grants are for PostgreSQL; SQLite has no users")
    found = conn.execute(
        text("SELECT rolsuper FROM pg_roles WHERE rolname = :role"), {"role": role}
    ).one_or_none()
    if found is None:
        raise GrantRefused(f"no role {role!r}: CREATE ROLE {role} LOGIN PASSWORD '...' first")
    if found.rolsuper:
        raise GrantRefused(f"{role!r} is a superuser: no grant or trigger can hold it back")
    _create_tracker_table(conn)
    owned = conn.execute(
        text(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            " AND tableowner = :role AND tablename = ANY(:tables)"
        ),
        {"role": role, "tables": list(BOT_PRIVILEGES)},
    ).scalars()
    owned = sorted(owned)
    if owned:
        raise GrantRefused(
            f"{role!r} owns {', '.join(owned)}: an owner can disable the consent triggers."
            " Let the migration role own the tables (ALTER TABLE ... OWNER TO ...) and run this as it."
        )
    for statement in grant_statements(role):
        conn.execute(text(statement))


def _create_tracker_table(conn: Connection) -> None:
    # Imported here: Rasa is heavy, and only this command needs its model.
    from rasa.core.tracker_store import SQLTrackerStore

    SQLTrackerStore.SQLEvent.__table__.create(conn, checkfirst=True)

"""Consent evidence, the customer's language, and erasure that keeps the opt-out (issue 13).

1. `customers.language`: the language the bot answers the customer in, once detected.
2. Evidence on each consent event (`consent_events`): the customer's exact words or the label of
   the button, template or link they used (`words`), when they asked and with which message
   (`requested_at`, `request_message_id`), the detected `language`, the question they were shown
   (`question_response`: the domain response; `question_version`: a short hash of its rendered
   text and buttons; `question_text`, `question_buttons`, `question_message_id`) and their
   `answer`; the event's own `message_id` and `occurred_at` are the answer's (the confirmation).
3. Erasure (`python -m bot customers forget`): `erasures` records each one (when, operator,
   counts; no personal data); `suppressions` keeps a keyed hash of each identifier of a forgotten
   customer (bot/store/keyed_hash.py), which bot.consent reads; every identity carries its
   `keyed_hash` from the moment it is recorded (computed here for the existing ones, with the
   key from SUPPRESSION_SECRET or var/: run the migration where the bot's key is).

The erasure path through the guards. The guards of 0002/0004/0005 forbid changing the consent
history, the OPT_OUT tag, opt-out requests and merges, and deleting identities; they stay, with one
exemption each: a row of a customer marked erased (`customers.erased_at`) may have its personal
columns (customers' words, message ids, identifiers, free text) set to NULL, and nothing else;
an erased customer's identities may be deleted. A customer can be marked erased only with an
`erasures` row for it (or the customer it was merged into), and never unmarked; its key may change
only in the statement that marks it (a migrated customer's key is its phone number). `erasures`
and `suppressions` are append-only (no UPDATE, DELETE, TRUNCATE or, on SQLite, INSERT OR REPLACE). The bot's own role gets SELECT only on both
(bot/grants.py), so the running bot can never mark anyone erased; the operator runs `forget` as
the tables' owner. What an erasure leaves: the customer row (no name, username, language or seen
times, a fresh key), its OPT_OUT tag and consent events (kind, source, times, response names and
versions), its requests (times, outcomes) and the hashes on the suppression list.

Downgrade refuses while anything would be lost: an erasure, a suppressed hash, or any evidence on
a consent event. Otherwise the columns and tables go and the guards are as 0005 left them.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

from bot.store.identifiers import Identifier
from bot.store.keyed_hash import keyed_hash, secret

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

OPT_OUT_PERMANENT = "OPT_OUT tags are permanent; they cannot be changed or removed"
HISTORY_APPEND_ONLY = "consent_events is append-only; rows cannot be changed or removed"
REQUEST_RESOLVE_ONLY = "an opt-out request can only be resolved, once, and never removed"
IDENTITY_FIXED = (
    "a customer identity is never deleted or moved; its status only goes from active to superseded"
)
MERGE_FIXED = "customer_merges is append-only"
KEY_FIXED = "the id and key of a customer never change"
ERASURE_FIXED = "a customer is marked erased only with its erasure record, once, for good"
RECORDS_APPEND_ONLY = "erasures and suppressions are append-only"
NO_TRUNCATE = "the customer store holds consent records and cannot be truncated"

EVIDENCE_COLUMNS = (
    ("language", sa.String(8)),
    ("words", sa.Text),
    ("requested_at", sa.DateTime(timezone=True)),
    ("request_message_id", sa.String(255)),
    ("question_response", sa.String(128)),
    ("question_version", sa.String(16)),
    ("question_text", sa.Text),
    ("question_buttons", sa.Text),
    ("question_message_id", sa.String(255)),
    ("answer", sa.Text),
)

# Every column of each guarded table (after this migration), and the personal ones an erasure
# sets to NULL. Listed here rather than read from the database: the guard is what we wrote down.
COLUMNS = {
    "tags": ("id", "customer_id", "name", "added_at", "source", "message_id"),
    "consent_events": (
        "id", "customer_id", "kind", "source", "message_id", "detail", "occurred_at", "recorded_at",
        "identifier_kind", "identifier_value", *(name for name, _ in EVIDENCE_COLUMNS),
    ),
    "opt_out_requests": (
        "id", "customer_id", "requested_at", "source", "message_id", "resolved_at", "resolution",
        "resolution_message_id",
    ),
    "customer_merges": ("id", "from_customer_id", "into_customer_id", "evidence", "message_id", "merged_at"),
}  # fmt: skip
PERSONAL = {
    "tags": ("message_id",),
    "consent_events": (
        "message_id", "detail", "identifier_value", "words", "request_message_id", "question_text",
        "question_buttons", "question_message_id", "answer",
    ),
    "opt_out_requests": ("message_id", "resolution_message_id"),
    "customer_merges": ("message_id",),
}  # fmt: skip
CUSTOMER_COLUMN = {
    "tags": "customer_id",
    "consent_events": "customer_id",
    "opt_out_requests": "customer_id",
    "customer_merges": "from_customer_id",
}

# What an INSERT OR REPLACE into the append-only tables would overwrite (SQLite).
REPLACE_KEYS = {
    "erasures": "id = NEW.id OR customer_id = NEW.customer_id",
    "suppressions": "keyed_hash = NEW.keyed_hash",
}

POSTGRESQL_FUNCTIONS = (
    """CREATE FUNCTION consent_customer_erased(customer integer) RETURNS boolean
    LANGUAGE sql STABLE AS $$
        SELECT EXISTS (SELECT 1 FROM customers WHERE id = customer AND erased_at IS NOT NULL)
    $$""",
    """CREATE FUNCTION consent_erasure_recorded(customer integer, survivor integer) RETURNS boolean
    LANGUAGE sql STABLE AS $$
        SELECT EXISTS (SELECT 1 FROM erasures WHERE customer_id IN (customer, survivor))
    $$""",
)


def _same(dialect: str) -> str:
    return "IS" if dialect == "sqlite" else "IS NOT DISTINCT FROM"


def _distinct(dialect: str) -> str:
    return "IS NOT" if dialect == "sqlite" else "IS DISTINCT FROM"


def _erased(dialect: str, column: str) -> str:
    if dialect == "sqlite":
        return f"EXISTS (SELECT 1 FROM customers WHERE id = OLD.{column} AND erased_at IS NOT NULL)"
    return f"consent_customer_erased(OLD.{column})"


def erasing(dialect: str, table: str) -> str:
    """SQL (trigger WHEN): this UPDATE is an erasure: the row's customer is marked erased, and
    the only change sets personal columns to NULL."""
    same = _same(dialect)
    unchanged = [
        f"(NEW.{c} IS NULL OR NEW.{c} {same} OLD.{c})" if c in PERSONAL[table] else f"NEW.{c} {same} OLD.{c}"
        for c in COLUMNS[table]
    ]
    return f"({_erased(dialect, CUSTOMER_COLUMN[table])} AND {' AND '.join(unchanged)})"


def _request_changed(dialect: str) -> str:
    # 0004's condition: resolved once, from open to resolved; its identity columns never change.
    distinct = _distinct(dialect)
    fixed = " OR ".join(
        f"NEW.{c} {distinct} OLD.{c}" for c in ("id", "customer_id", "requested_at", "source", "message_id")
    )
    return f"(OLD.resolved_at IS NOT NULL OR NEW.resolved_at IS NULL OR {fixed})"


def _identity_changed(dialect: str, with_hash: bool) -> str:
    # 0005's condition, plus: a keyed hash, once recorded, never changes.
    distinct = _distinct(dialect)
    fixed = " OR ".join(
        f"NEW.{c} {distinct} OLD.{c}"
        for c in ("id", "customer_id", "kind", "value", "evidence", "first_seen_at")
    )
    status = (
        f"(NEW.status {distinct} OLD.status AND NOT (OLD.status = 'active' AND NEW.status = 'superseded'))"
    )
    hashed = (
        f" OR (OLD.keyed_hash IS NOT NULL AND NEW.keyed_hash {distinct} OLD.keyed_hash)" if with_hash else ""
    )
    return f"({fixed} OR {status}{hashed})"


def _key_changed(dialect: str, erasure_allowed: bool) -> str:
    distinct = _distinct(dialect)
    if not erasure_allowed:
        return f'(NEW.id {distinct} OLD.id OR NEW."key" {distinct} OLD."key")'
    # The key changes only in the statement that marks the customer erased (a migrated customer's
    # key is its phone number).
    return (
        f'(NEW.id {distinct} OLD.id OR (NEW."key" {distinct} OLD."key"'
        " AND NOT (OLD.erased_at IS NULL AND NEW.erased_at IS NOT NULL)))"
    )


def _erasure_mark_refused(dialect: str) -> str:
    distinct = _distinct(dialect)
    recorded = (
        "EXISTS (SELECT 1 FROM erasures WHERE customer_id IN (OLD.id, OLD.merged_into))"
        if dialect == "sqlite"
        else "consent_erasure_recorded(OLD.id, OLD.merged_into)"
    )
    return (
        f"((OLD.erased_at IS NOT NULL AND NEW.erased_at {distinct} OLD.erased_at)"
        f" OR (OLD.erased_at IS NULL AND NEW.erased_at IS NOT NULL AND NOT {recorded}))"
    )


def _sqlite_trigger(name: str, timing: str, when: str | None, message: str | None) -> str:
    action = f"RAISE(ABORT, '{message}')" if message else "RAISE(IGNORE)"
    condition = f"\n    WHEN {when}" if when else ""
    return f"CREATE TRIGGER {name} {timing}{condition}\n    BEGIN SELECT {action}; END"


def _postgresql_trigger(name: str, timing: str, when: str | None, message: str | None) -> str:
    condition = f" WHEN ({when})" if when else ""
    return (
        f"CREATE TRIGGER {name} {timing} FOR EACH ROW{condition} EXECUTE FUNCTION consent_refuse('{message}')"
    )


def _guard(
    dialect: str, name: str, timing: str, when: str | None, message: str | None
) -> tuple[str, str, str]:
    """(trigger, table, CREATE statement); the table is the one `timing` names ("... ON <table>")."""
    trigger = _sqlite_trigger if dialect == "sqlite" else _postgresql_trigger
    return name, timing.split()[-1], trigger(name, timing, when, message)


def guards(dialect: str) -> list[tuple[str, str, str]]:
    """(trigger, table, CREATE statement) of every trigger this migration adds or replaces."""
    found = [
        _guard(
            dialect,
            "tags_opt_out_no_update",
            "BEFORE UPDATE ON tags",
            f"(OLD.name = 'OPT_OUT' OR NEW.name = 'OPT_OUT') AND NOT {erasing(dialect, 'tags')}",
            OPT_OUT_PERMANENT,
        ),
        _guard(
            dialect,
            "consent_events_no_update",
            "BEFORE UPDATE ON consent_events",
            f"NOT {erasing(dialect, 'consent_events')}",
            HISTORY_APPEND_ONLY,
        ),
        _guard(
            dialect,
            "opt_out_requests_resolve_only",
            "BEFORE UPDATE ON opt_out_requests",
            f"{_request_changed(dialect)} AND NOT {erasing(dialect, 'opt_out_requests')}",
            REQUEST_RESOLVE_ONLY,
        ),
        _guard(
            dialect,
            "customer_identities_fixed",
            "BEFORE UPDATE ON customer_identities",
            _identity_changed(dialect, with_hash=True),
            IDENTITY_FIXED,
        ),
        _guard(
            dialect,
            "customer_identities_no_delete",
            "BEFORE DELETE ON customer_identities",
            f"NOT {_erased(dialect, 'customer_id')}",
            IDENTITY_FIXED,
        ),
        _guard(
            dialect,
            "customer_merges_no_update",
            "BEFORE UPDATE ON customer_merges",
            f"NOT {erasing(dialect, 'customer_merges')}",
            MERGE_FIXED,
        ),
        _guard(
            dialect,
            "customers_key_fixed",
            'BEFORE UPDATE OF id, "key", erased_at ON customers',
            _key_changed(dialect, erasure_allowed=True),
            KEY_FIXED,
        ),
        _guard(
            dialect,
            "customers_erasure_recorded",
            "BEFORE UPDATE OF erased_at ON customers",
            _erasure_mark_refused(dialect),
            ERASURE_FIXED,
        ),
    ]
    for table in ("erasures", "suppressions"):
        if dialect == "sqlite":
            found += [
                _guard(
                    "sqlite",
                    f"{table}_no_{change}",
                    f"BEFORE {change.upper()} ON {table}",
                    None,
                    RECORDS_APPEND_ONLY,
                )
                for change in ("update", "delete")
            ]
            # INSERT OR REPLACE would delete the row it replaces without a delete trigger.
            found.append(
                _guard(
                    "sqlite",
                    f"{table}_no_replace",
                    f"BEFORE INSERT ON {table}",
                    f"EXISTS (SELECT 1 FROM {table} WHERE {REPLACE_KEYS[table]})",
                    None,
                )
            )
        else:
            found += [
                _guard(
                    dialect,
                    f"{table}_no_change",
                    f"BEFORE UPDATE OR DELETE ON {table}",
                    None,
                    RECORDS_APPEND_ONLY,
                ),
                (
                    f"{table}_no_truncate",
                    table,
                    f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}"
                    f" FOR EACH STATEMENT EXECUTE FUNCTION consent_refuse('{NO_TRUNCATE}')",
                ),
            ]
    return found


# What 0002/0004/0005 had in place of the triggers `guards` replaces (for the downgrade).
def _previous(dialect: str) -> list[tuple[str, str, str]]:
    previous = [
        _guard(
            dialect,
            "tags_opt_out_no_update",
            "BEFORE UPDATE ON tags",
            "OLD.name = 'OPT_OUT' OR NEW.name = 'OPT_OUT'",
            OPT_OUT_PERMANENT,
        ),
        _guard(
            dialect,
            "opt_out_requests_resolve_only",
            "BEFORE UPDATE ON opt_out_requests",
            _request_changed(dialect),
            REQUEST_RESOLVE_ONLY,
        ),
        _guard(
            dialect,
            "customer_identities_fixed",
            "BEFORE UPDATE ON customer_identities",
            _identity_changed(dialect, with_hash=False),
            IDENTITY_FIXED,
        ),
        _guard(
            dialect,
            "customers_key_fixed",
            'BEFORE UPDATE OF id, "key" ON customers',
            _key_changed(dialect, erasure_allowed=False),
            KEY_FIXED,
        ),
    ]
    if dialect == "sqlite":
        previous += [
            _guard(
                "sqlite",
                "consent_events_no_update",
                "BEFORE UPDATE ON consent_events",
                None,
                HISTORY_APPEND_ONLY,
            ),
            _guard(
                "sqlite",
                "customer_identities_no_delete",
                "BEFORE DELETE ON customer_identities",
                None,
                IDENTITY_FIXED,
            ),
            _guard(
                "sqlite", "customer_merges_no_update", "BEFORE UPDATE ON customer_merges", None, MERGE_FIXED
            ),
        ]
    else:
        previous += [
            _guard(
                "postgresql",
                "consent_events_no_change",
                "BEFORE UPDATE OR DELETE ON consent_events",
                None,
                HISTORY_APPEND_ONLY,
            ),
            _guard(
                "postgresql",
                "customer_identities_no_delete",
                "BEFORE DELETE ON customer_identities",
                None,
                IDENTITY_FIXED,
            ),
            _guard(
                "postgresql",
                "customer_merges_no_change",
                "BEFORE UPDATE OR DELETE ON customer_merges",
                None,
                MERGE_FIXED,
            ),
        ]
    return previous


def _drop_trigger(dialect: str, name: str, table: str) -> None:
    op.execute(f"DROP TRIGGER {name}" if dialect == "sqlite" else f"DROP TRIGGER {name} ON {table}")


def upgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    if dialect not in ("sqlite", "postgresql"):
        raise NotImplementedError(f"no consent triggers for {dialect}; refusing to migrate")
    op.add_column("customers", sa.Column("language", sa.String(8)))
    op.add_column("customers", sa.Column("erased_at", sa.DateTime(timezone=True)))
    for name, type_ in EVIDENCE_COLUMNS:
        op.add_column("consent_events", sa.Column(name, type_))
    op.add_column("customer_identities", sa.Column("keyed_hash", sa.String(64)))
    key = secret()
    rows = bind.execute(sa.text("SELECT id, kind, value FROM customer_identities")).all()
    for row in rows:
        bind.execute(
            sa.text("UPDATE customer_identities SET keyed_hash = :hash WHERE id = :id"),
            {"hash": keyed_hash(key, Identifier(row.kind, row.value)), "id": row.id},
        )
    op.create_index("ix_customer_identities_keyed_hash", "customer_identities", ["keyed_hash"])
    op.create_table(
        "erasures",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.id"), nullable=False, unique=True),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("operator", sa.String(64), nullable=False),
        sa.Column("customers", sa.Integer, nullable=False),
        sa.Column("identifiers", sa.Integer, nullable=False),
        sa.Column("conversation_events", sa.Integer, nullable=False),
        sa.Column("message_records", sa.Integer, nullable=False),
    )
    op.create_table(
        "suppressions",
        sa.Column("keyed_hash", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("suppressed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("erasure_id", sa.Integer, sa.ForeignKey("erasures.id"), nullable=False),
    )
    if dialect == "postgresql":
        for statement in POSTGRESQL_FUNCTIONS:
            op.execute(statement)
        # 0002 and 0005 guarded UPDATE and DELETE with one trigger; they are split here.
        _drop_trigger(dialect, "consent_events_no_change", "consent_events")
        _drop_trigger(dialect, "customer_merges_no_change", "customer_merges")
        op.execute(
            _postgresql_trigger(
                "consent_events_no_delete", "BEFORE DELETE ON consent_events", None, HISTORY_APPEND_ONLY
            )
        )
        op.execute(
            _postgresql_trigger(
                "customer_merges_no_delete", "BEFORE DELETE ON customer_merges", None, MERGE_FIXED
            )
        )
    replaced = {name for name, _, _ in _previous(dialect)}
    for name, table, statement in guards(dialect):
        if name in replaced:
            _drop_trigger(dialect, name, table)
        op.execute(statement)


def downgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    evidence = " OR ".join(f"{name} IS NOT NULL" for name, _ in EVIDENCE_COLUMNS)
    holds = bind.execute(
        sa.text(
            "SELECT EXISTS (SELECT 1 FROM erasures) OR EXISTS (SELECT 1 FROM suppressions)"
            f" OR EXISTS (SELECT 1 FROM consent_events WHERE {evidence})"
        )
    ).scalar()
    if holds:
        raise RuntimeError(
            "refusing to downgrade: erasures, the suppression list or consent evidence would be lost"
            " (a forgotten customer could be messaged again; proof of consent would go)"
        )
    for name, table, _ in guards(dialect):
        if table not in ("erasures", "suppressions"):
            _drop_trigger(dialect, name, table)
    if dialect == "postgresql":
        _drop_trigger(dialect, "consent_events_no_delete", "consent_events")
        _drop_trigger(dialect, "customer_merges_no_delete", "customer_merges")
    for _, _, statement in _previous(dialect):
        op.execute(statement)
    op.drop_table("suppressions")  # their triggers go with them
    op.drop_table("erasures")
    if dialect == "postgresql":
        op.execute("DROP FUNCTION consent_erasure_recorded(integer, integer)")
        op.execute("DROP FUNCTION consent_customer_erased(integer)")
    op.drop_index("ix_customer_identities_keyed_hash", "customer_identities")
    op.drop_column("customer_identities", "keyed_hash")
    for name, _ in reversed(EVIDENCE_COLUMNS):
        op.drop_column("consent_events", name)
    op.drop_column("customers", "erased_at")
    op.drop_column("customers", "language")

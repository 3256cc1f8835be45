"""Opt-out requests (asked to stop, not confirmed yet), and the guards 0002 left open.

1. `opt_out_requests`: one row per time a customer asks to stop; while one is open (resolved_at
   NULL) bot.consent allows no marketing. The database lets a row change only once, from open to
   resolved, and never be deleted (or truncated, on PostgreSQL): a request cannot quietly vanish
   and let marketing resume. On SQLite, INSERT OR REPLACE over an existing request (by id, or a
   second open one for the customer) is skipped, like the 0002 guards: REPLACE fires no delete
   trigger.
2. A tag's id, customer and name never change. 0002 refused changing an OPT_OUT row, but on SQLite
   `UPDATE OR REPLACE tags SET id = <an OPT_OUT row's id> WHERE id = <another tag>` changed the
   other row, and REPLACE then deleted the OPT_OUT row without firing its delete trigger. A BEFORE
   trigger refuses the change to `id` first, so the conflict (and the REPLACE) never happens.
   Moving a tag to another customer is refused for the same reason (and because it makes no sense).

Downgrade drops the tag triggers, and drops the requests table only while it is empty: an open
request is a customer's unanswered "stop", a resolved one is evidence.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TAG_FIXED = "the id, customer and name of a tag never change"
REQUEST_RESOLVE_ONLY = "an opt-out request can only be resolved, once, and never removed"
NO_TRUNCATE = "the customer store holds consent records and cannot be truncated"

# The identity columns of a request: set when the customer asks, never changed afterwards.
_REQUEST_CHANGED = " OR ".join(
    f"NEW.{column} IS {{distinct}} OLD.{column}"
    for column in ("id", "customer_id", "requested_at", "source", "message_id")
)
# An OPT_OUT row is left to 0002's trigger, which refuses any change to it with its own message.
_TAG_CHANGED = (
    "OLD.name <> 'OPT_OUT' AND NEW.name <> 'OPT_OUT' AND ("
    + " OR ".join(f"NEW.{column} IS {{distinct}} OLD.{column}" for column in ("id", "customer_id", "name"))
    + ")"
)

SQLITE_TRIGGERS = (
    f"""CREATE TRIGGER tags_identity_fixed BEFORE UPDATE OF id, customer_id, name ON tags
    WHEN {_TAG_CHANGED.format(distinct="NOT")}
    BEGIN SELECT RAISE(ABORT, '{TAG_FIXED}'); END""",
    f"""CREATE TRIGGER opt_out_requests_resolve_only BEFORE UPDATE ON opt_out_requests
    WHEN OLD.resolved_at IS NOT NULL OR NEW.resolved_at IS NULL
        OR {_REQUEST_CHANGED.format(distinct="NOT")}
    BEGIN SELECT RAISE(ABORT, '{REQUEST_RESOLVE_ONLY}'); END""",
    f"""CREATE TRIGGER opt_out_requests_no_delete BEFORE DELETE ON opt_out_requests
    BEGIN SELECT RAISE(ABORT, '{REQUEST_RESOLVE_ONLY}'); END""",
    """CREATE TRIGGER opt_out_requests_no_replace BEFORE INSERT ON opt_out_requests
    WHEN EXISTS (
        SELECT 1 FROM opt_out_requests
        WHERE id = NEW.id
           OR (customer_id = NEW.customer_id AND resolved_at IS NULL AND NEW.resolved_at IS NULL)
    )
    BEGIN SELECT RAISE(IGNORE); END""",
)

# consent_refuse() comes from 0002.
POSTGRESQL_TRIGGERS = (
    f"""CREATE TRIGGER tags_identity_fixed BEFORE UPDATE OF id, customer_id, name ON tags
    FOR EACH ROW WHEN ({_TAG_CHANGED.format(distinct="DISTINCT FROM")})
    EXECUTE FUNCTION consent_refuse('{TAG_FIXED}')""",
    f"""CREATE TRIGGER opt_out_requests_resolve_only BEFORE UPDATE ON opt_out_requests
    FOR EACH ROW WHEN (OLD.resolved_at IS NOT NULL OR NEW.resolved_at IS NULL
        OR {_REQUEST_CHANGED.format(distinct="DISTINCT FROM")})
    EXECUTE FUNCTION consent_refuse('{REQUEST_RESOLVE_ONLY}')""",
    f"""CREATE TRIGGER opt_out_requests_no_delete BEFORE DELETE ON opt_out_requests
    FOR EACH ROW EXECUTE FUNCTION consent_refuse('{REQUEST_RESOLVE_ONLY}')""",
    f"""CREATE TRIGGER opt_out_requests_no_truncate BEFORE TRUNCATE ON opt_out_requests
    FOR EACH STATEMENT EXECUTE FUNCTION consent_refuse('{NO_TRUNCATE}')""",
)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect not in ("sqlite", "postgresql"):
        raise NotImplementedError(f"no consent triggers for {dialect}; refusing to migrate")
    op.create_table(
        "opt_out_requests",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.id"), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("message_id", sa.String(255)),
        sa.Column("resolved_at", sa.DateTime(timezone=True)),
        sa.Column("resolution", sa.String(16)),
        sa.Column("resolution_message_id", sa.String(255)),
        sa.CheckConstraint(
            "(resolved_at IS NULL AND resolution IS NULL)"
            " OR (resolved_at IS NOT NULL AND resolution IN ('opted_out', 'kept'))",
            name="ck_opt_out_requests_resolution",
        ),
    )
    op.create_index(
        "uq_opt_out_requests_open",
        "opt_out_requests",
        ["customer_id"],
        unique=True,
        sqlite_where=sa.text("resolved_at IS NULL"),
        postgresql_where=sa.text("resolved_at IS NULL"),
    )
    for statement in SQLITE_TRIGGERS if dialect == "sqlite" else POSTGRESQL_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().execute(sa.text("SELECT EXISTS (SELECT 1 FROM opt_out_requests)")).scalar():
        raise RuntimeError(
            "refusing to drop opt_out_requests: it holds customers' requests to stop marketing"
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER tags_identity_fixed ON tags")
    else:
        op.execute("DROP TRIGGER tags_identity_fixed")
    op.drop_table("opt_out_requests")

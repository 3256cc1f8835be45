"""Customer store: customers, tags and the consent history, with opt-outs guarded by the database.

The application never removes an OPT_OUT tag, and the database refuses it too, so that no script,
console session or future bug can: triggers abort UPDATE or DELETE of an OPT_OUT tag row, turning
another tag into OPT_OUT, DELETE of a customer who has one, changing a customer's number (which
would move an opt-out to somebody else), and any UPDATE or DELETE of consent_events. PostgreSQL
also refuses TRUNCATE of the three tables. SQLite needs two more guards because
INSERT OR REPLACE deletes the conflicting row without firing delete triggers: inserting a row that
would replace an opted-out customer, an OPT_OUT tag or a consent event is silently skipped.

Both dialects raise integrity errors (SQLite SQLITE_CONSTRAINT_TRIGGER, PostgreSQL SQLSTATE
23000), so SQLAlchemy reports `IntegrityError` either way. A superuser can still DROP the tables
or the triggers: that is a deliberate act no trigger can prevent.

Downgrade drops the tables together with their triggers (never the protection alone), and refuses
while the store holds any consent record: a rollback must not erase opt-outs. Export them first
(`python -m bot customers export-opt-outs --out FILE`) and drop the tables by hand if you must.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

OPT_OUT_PERMANENT = "OPT_OUT tags are permanent; they cannot be changed or removed"
OPTED_OUT_CUSTOMER = "a customer with an OPT_OUT tag cannot be deleted"
NUMBER_FIXED = "the wa_id and id of a customer never change"
HISTORY_APPEND_ONLY = "consent_events is append-only; rows cannot be changed or removed"
NO_TRUNCATE = "the customer store holds consent records and cannot be truncated"

# SQLite: `RAISE(ABORT, ...)` rolls back the statement; `RAISE(IGNORE)` skips the row silently.
SQLITE_TRIGGERS = (
    f"""CREATE TRIGGER tags_opt_out_no_update BEFORE UPDATE ON tags
    WHEN OLD.name = 'OPT_OUT' OR NEW.name = 'OPT_OUT'
    BEGIN SELECT RAISE(ABORT, '{OPT_OUT_PERMANENT}'); END""",
    f"""CREATE TRIGGER tags_opt_out_no_delete BEFORE DELETE ON tags
    WHEN OLD.name = 'OPT_OUT'
    BEGIN SELECT RAISE(ABORT, '{OPT_OUT_PERMANENT}'); END""",
    """CREATE TRIGGER tags_opt_out_no_replace BEFORE INSERT ON tags
    WHEN EXISTS (
        SELECT 1 FROM tags
        WHERE name = 'OPT_OUT'
          AND (id = NEW.id OR (customer_id = NEW.customer_id AND NEW.name = 'OPT_OUT'))
    )
    BEGIN SELECT RAISE(IGNORE); END""",
    f"""CREATE TRIGGER customers_opt_out_no_delete BEFORE DELETE ON customers
    WHEN EXISTS (SELECT 1 FROM tags WHERE customer_id = OLD.id AND name = 'OPT_OUT')
    BEGIN SELECT RAISE(ABORT, '{OPTED_OUT_CUSTOMER}'); END""",
    f"""CREATE TRIGGER customers_number_fixed BEFORE UPDATE OF id, wa_id ON customers
    WHEN NEW.id IS NOT OLD.id OR NEW.wa_id IS NOT OLD.wa_id
    BEGIN SELECT RAISE(ABORT, '{NUMBER_FIXED}'); END""",
    """CREATE TRIGGER customers_opt_out_no_replace BEFORE INSERT ON customers
    WHEN EXISTS (
        SELECT 1 FROM customers JOIN tags ON tags.customer_id = customers.id
        WHERE (customers.id = NEW.id OR customers.wa_id = NEW.wa_id) AND tags.name = 'OPT_OUT'
    )
    BEGIN SELECT RAISE(IGNORE); END""",
    f"""CREATE TRIGGER consent_events_no_update BEFORE UPDATE ON consent_events
    BEGIN SELECT RAISE(ABORT, '{HISTORY_APPEND_ONLY}'); END""",
    f"""CREATE TRIGGER consent_events_no_delete BEFORE DELETE ON consent_events
    BEGIN SELECT RAISE(ABORT, '{HISTORY_APPEND_ONLY}'); END""",
    """CREATE TRIGGER consent_events_no_replace BEFORE INSERT ON consent_events
    WHEN EXISTS (
        SELECT 1 FROM consent_events
        WHERE id = NEW.id
           OR (customer_id = NEW.customer_id AND message_id = NEW.message_id)
           OR (customer_id = NEW.customer_id AND message_id IS NULL AND NEW.message_id IS NULL
               AND kind = NEW.kind AND source = NEW.source AND occurred_at = NEW.occurred_at)
    )
    BEGIN SELECT RAISE(IGNORE); END""",
)

# PostgreSQL: trigger WHEN clauses cannot hold subqueries, hence the second function. No '%' or
# ':' in this SQL: the driver and SQLAlchemy would read them as parameter markers.
POSTGRESQL_FUNCTIONS = (
    """CREATE FUNCTION consent_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION USING MESSAGE = TG_ARGV[0], ERRCODE = 'integrity_constraint_violation';
    END $$""",
    f"""CREATE FUNCTION consent_keep_opted_out_customer() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF EXISTS (SELECT 1 FROM tags WHERE customer_id = OLD.id AND name = 'OPT_OUT') THEN
            RAISE EXCEPTION USING
                MESSAGE = '{OPTED_OUT_CUSTOMER}', ERRCODE = 'integrity_constraint_violation';
        END IF;
        RETURN OLD;
    END $$""",
)
POSTGRESQL_TRIGGERS = (
    f"""CREATE TRIGGER tags_opt_out_no_update BEFORE UPDATE ON tags FOR EACH ROW
    WHEN (OLD.name = 'OPT_OUT' OR NEW.name = 'OPT_OUT')
    EXECUTE FUNCTION consent_refuse('{OPT_OUT_PERMANENT}')""",
    f"""CREATE TRIGGER tags_opt_out_no_delete BEFORE DELETE ON tags FOR EACH ROW
    WHEN (OLD.name = 'OPT_OUT')
    EXECUTE FUNCTION consent_refuse('{OPT_OUT_PERMANENT}')""",
    """CREATE TRIGGER customers_opt_out_no_delete BEFORE DELETE ON customers FOR EACH ROW
    EXECUTE FUNCTION consent_keep_opted_out_customer()""",
    f"""CREATE TRIGGER customers_number_fixed BEFORE UPDATE OF id, wa_id ON customers FOR EACH ROW
    WHEN (NEW.id IS DISTINCT FROM OLD.id OR NEW.wa_id IS DISTINCT FROM OLD.wa_id)
    EXECUTE FUNCTION consent_refuse('{NUMBER_FIXED}')""",
    f"""CREATE TRIGGER consent_events_no_change BEFORE UPDATE OR DELETE ON consent_events
    FOR EACH ROW EXECUTE FUNCTION consent_refuse('{HISTORY_APPEND_ONLY}')""",
    *(
        f"""CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
        FOR EACH STATEMENT EXECUTE FUNCTION consent_refuse('{NO_TRUNCATE}')"""
        for table in ("customers", "tags", "consent_events")
    ),
)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    # Checked before creating anything: the store must never exist without its guards.
    if dialect not in ("sqlite", "postgresql"):
        raise NotImplementedError(f"no consent triggers for {dialect}; refusing to migrate")
    op.create_table(
        "customers",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("wa_id", sa.String(32), nullable=False, unique=True),
        sa.Column("name", sa.String(255)),
        sa.Column("first_seen_at", sa.DateTime(timezone=True)),
        sa.Column("last_seen_at", sa.DateTime(timezone=True)),
    )
    op.create_table(
        "tags",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.id"), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("message_id", sa.String(255)),
        sa.UniqueConstraint("customer_id", "name", name="uq_tags_customer_name"),
    )
    op.create_table(
        "consent_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.id"), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("message_id", sa.String(255)),
        sa.Column("detail", sa.Text),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("customer_id", "message_id", name="uq_consent_events_customer_message"),
    )
    op.create_index(
        "uq_consent_events_customer_kind_source_time",
        "consent_events",
        ["customer_id", "kind", "source", "occurred_at"],
        unique=True,
        sqlite_where=sa.text("message_id IS NULL"),
        postgresql_where=sa.text("message_id IS NULL"),
    )
    statements = SQLITE_TRIGGERS if dialect == "sqlite" else POSTGRESQL_FUNCTIONS + POSTGRESQL_TRIGGERS
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    holds_consent = op.get_bind().execute(
        sa.text(
            "SELECT EXISTS (SELECT 1 FROM consent_events)"
            " OR EXISTS (SELECT 1 FROM tags WHERE name = 'OPT_OUT')"
        )
    )
    if holds_consent.scalar():
        raise RuntimeError(
            "refusing to drop the customer store: it holds consent records (opt-outs are a legal"
            " obligation). Export them with `python -m bot customers export-opt-outs --out FILE`"
            " and drop the tables by hand if you really mean to."
        )
    # Dropping a table drops its triggers with it, so the protection goes only with the data.
    op.drop_table("consent_events")
    op.drop_table("tags")
    op.drop_table("customers")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION consent_keep_opted_out_customer()")
        op.execute("DROP FUNCTION consent_refuse()")

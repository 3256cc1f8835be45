"""Customers without phone numbers: a key of our own, identities, merges (issue 10).

1. `customers.key`: the customer's stable key and Rasa's sender id (unique, never changed). Every
   customer that exists before this migration gets key = its old `wa_id` string: Rasa's tracker
   store keys their conversations by that sender id, so their conversations, and a confirmation
   form waiting for their answer, carry on without touching Rasa's tables. New customers get an
   opaque `c_` + 20 base32 characters (bot/store/identifiers.py).
2. `customers.wa_id` goes: phone numbers live in `customer_identities` (with BSUIDs and parent
   BSUIDs); each old customer gets an active `phone` identity from its wa_id (evidence `migrated`).
   `username` joins `name` as display data. `merged_into` points a merged-away customer at the
   customer it is part of (bot/store/identities.py).
3. `customer_merges` (append-only log), `unidentified_events` (webhook events without a usable
   sender, counted per reason), `consent_events.identifier_kind/value` (what an event was captured
   under). `inbound_messages.wa_id` becomes `customer_key`, `broadcast_deliveries.wa_id`
   `customer_key` (the old values are the keys, by 1.).

Guards, on both dialects as in 0002/0004: an identity is never deleted, never changes customer,
kind, value, evidence or first sighting, and changes status only from active to superseded; a
merge record never changes; `merged_into` once set never becomes NULL; a customer's id and key never
change; a customer in a family (itself, the customer it was merged into, or those merged into it)
holding an OPT_OUT tag cannot be deleted; on SQLite a customer, identity or merge row is never
replaced by INSERT OR REPLACE (skipped, as 0002 does: REPLACE fires no delete trigger).

SQLite cannot drop a UNIQUE column, so `customers` is rebuilt: the migration runs with foreign
keys off on SQLite (bot/migrations/env.py), and checks them before it commits.

Downgrade refuses while anything would be lost that the old schema cannot hold: a customer
without exactly one active phone number (a BSUID-only customer, a number change), or a merge.
Otherwise each customer gets back wa_id = its phone number, and the identities go.

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Iterable

import sqlalchemy as sa
from alembic import context, op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

IDENTITY_FIXED = (
    "a customer identity is never deleted or moved; its status only goes from active to superseded"
)
MERGE_FIXED = "customer_merges is append-only"
KEY_FIXED = "the id and key of a customer never change"
MERGE_PERMANENT = "a merged customer stays merged"
OPTED_OUT_FAMILY = "a customer whose family has an OPT_OUT tag cannot be deleted"
NO_TRUNCATE = "the customer store holds consent records and cannot be truncated"

_IDENTITY_CHANGED = " OR ".join(
    f"NEW.{column} IS {{distinct}} OLD.{column}"
    for column in ("id", "customer_id", "kind", "value", "evidence", "first_seen_at")
)
_STATUS_CHANGED = (
    "(NEW.status IS {distinct} OLD.status AND NOT (OLD.status = 'active' AND NEW.status = 'superseded'))"
)
# The family of a customer being deleted (OLD): itself, its survivor, and the survivor's members.
_FAMILY_OPTED_OUT = """EXISTS (
    SELECT 1 FROM tags JOIN customers AS member ON member.id = tags.customer_id
    WHERE tags.name = 'OPT_OUT' AND (
        member.id = OLD.id OR member.merged_into = OLD.id
        OR member.id = OLD.merged_into OR member.merged_into = OLD.merged_into))"""

SQLITE_CUSTOMERS = """CREATE TABLE customers (
    id INTEGER NOT NULL PRIMARY KEY,
    "key" VARCHAR(32) NOT NULL UNIQUE,
    name VARCHAR(255),
    username VARCHAR(64),
    first_seen_at DATETIME,
    last_seen_at DATETIME,
    merged_into INTEGER REFERENCES customers (id),
    CONSTRAINT ck_customers_not_merged_into_self CHECK (merged_into IS NULL OR merged_into <> id)
)"""

SQLITE_TRIGGERS = (
    f"""CREATE TRIGGER customers_opt_out_no_delete BEFORE DELETE ON customers
    WHEN {_FAMILY_OPTED_OUT}
    BEGIN SELECT RAISE(ABORT, '{OPTED_OUT_FAMILY}'); END""",
    f"""CREATE TRIGGER customers_key_fixed BEFORE UPDATE OF id, "key" ON customers
    WHEN NEW.id IS NOT OLD.id OR NEW."key" IS NOT OLD."key"
    BEGIN SELECT RAISE(ABORT, '{KEY_FIXED}'); END""",
    f"""CREATE TRIGGER customers_merge_permanent BEFORE UPDATE OF merged_into ON customers
    WHEN OLD.merged_into IS NOT NULL AND NEW.merged_into IS NULL
    BEGIN SELECT RAISE(ABORT, '{MERGE_PERMANENT}'); END""",
    """CREATE TRIGGER customers_no_replace BEFORE INSERT ON customers
    WHEN EXISTS (SELECT 1 FROM customers WHERE id = NEW.id OR "key" = NEW."key")
    BEGIN SELECT RAISE(IGNORE); END""",
    f"""CREATE TRIGGER customer_identities_fixed BEFORE UPDATE ON customer_identities
    WHEN {_IDENTITY_CHANGED.format(distinct="NOT")} OR {_STATUS_CHANGED.format(distinct="NOT")}
    BEGIN SELECT RAISE(ABORT, '{IDENTITY_FIXED}'); END""",
    f"""CREATE TRIGGER customer_identities_no_delete BEFORE DELETE ON customer_identities
    BEGIN SELECT RAISE(ABORT, '{IDENTITY_FIXED}'); END""",
    """CREATE TRIGGER customer_identities_no_replace BEFORE INSERT ON customer_identities
    WHEN EXISTS (
        SELECT 1 FROM customer_identities
        WHERE id = NEW.id
           OR (kind = NEW.kind AND value = NEW.value AND status = 'active' AND NEW.status = 'active')
    )
    BEGIN SELECT RAISE(IGNORE); END""",
    f"""CREATE TRIGGER customer_merges_no_update BEFORE UPDATE ON customer_merges
    BEGIN SELECT RAISE(ABORT, '{MERGE_FIXED}'); END""",
    f"""CREATE TRIGGER customer_merges_no_delete BEFORE DELETE ON customer_merges
    BEGIN SELECT RAISE(ABORT, '{MERGE_FIXED}'); END""",
    """CREATE TRIGGER customer_merges_no_replace BEFORE INSERT ON customer_merges
    WHEN EXISTS (
        SELECT 1 FROM customer_merges WHERE id = NEW.id OR from_customer_id = NEW.from_customer_id
    )
    BEGIN SELECT RAISE(IGNORE); END""",
)

# consent_refuse() comes from 0002; consent_keep_opted_out_customer() too, re-written for families.
POSTGRESQL_FAMILY_FUNCTION = f"""CREATE OR REPLACE FUNCTION consent_keep_opted_out_customer()
    RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF {_FAMILY_OPTED_OUT} THEN
            RAISE EXCEPTION USING
                MESSAGE = '{OPTED_OUT_FAMILY}', ERRCODE = 'integrity_constraint_violation';
        END IF;
        RETURN OLD;
    END $$"""
POSTGRESQL_OLD_FUNCTION = """CREATE OR REPLACE FUNCTION consent_keep_opted_out_customer()
    RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF EXISTS (SELECT 1 FROM tags WHERE customer_id = OLD.id AND name = 'OPT_OUT') THEN
            RAISE EXCEPTION USING
                MESSAGE = 'a customer with an OPT_OUT tag cannot be deleted',
                ERRCODE = 'integrity_constraint_violation';
        END IF;
        RETURN OLD;
    END $$"""
POSTGRESQL_TRIGGERS = (
    f"""CREATE TRIGGER customers_key_fixed BEFORE UPDATE OF id, "key" ON customers FOR EACH ROW
    WHEN (NEW.id IS DISTINCT FROM OLD.id OR NEW."key" IS DISTINCT FROM OLD."key")
    EXECUTE FUNCTION consent_refuse('{KEY_FIXED}')""",
    f"""CREATE TRIGGER customers_merge_permanent BEFORE UPDATE OF merged_into ON customers
    FOR EACH ROW WHEN (OLD.merged_into IS NOT NULL AND NEW.merged_into IS NULL)
    EXECUTE FUNCTION consent_refuse('{MERGE_PERMANENT}')""",
    f"""CREATE TRIGGER customer_identities_fixed BEFORE UPDATE ON customer_identities FOR EACH ROW
    WHEN ({_IDENTITY_CHANGED.format(distinct="DISTINCT FROM")}
          OR {_STATUS_CHANGED.format(distinct="DISTINCT FROM")})
    EXECUTE FUNCTION consent_refuse('{IDENTITY_FIXED}')""",
    f"""CREATE TRIGGER customer_identities_no_delete BEFORE DELETE ON customer_identities
    FOR EACH ROW EXECUTE FUNCTION consent_refuse('{IDENTITY_FIXED}')""",
    f"""CREATE TRIGGER customer_merges_no_change BEFORE UPDATE OR DELETE ON customer_merges
    FOR EACH ROW EXECUTE FUNCTION consent_refuse('{MERGE_FIXED}')""",
    *(
        f"""CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
        FOR EACH STATEMENT EXECUTE FUNCTION consent_refuse('{NO_TRUNCATE}')"""
        for table in ("customer_identities", "customer_merges")
    ),
)


def upgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    if dialect not in ("sqlite", "postgresql"):
        raise NotImplementedError(f"no consent triggers for {dialect}; refusing to migrate")
    op.create_table(
        "customer_identities",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.id"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("value", sa.String(160), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("evidence", sa.String(32), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("superseded_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("kind IN ('phone', 'bsuid', 'parent_bsuid')", name="ck_customer_identities_kind"),
        sa.CheckConstraint("status IN ('active', 'superseded')", name="ck_customer_identities_status"),
    )
    op.create_index(
        "uq_customer_identities_active",
        "customer_identities",
        ["kind", "value"],
        unique=True,
        sqlite_where=sa.text("status = 'active'"),
        postgresql_where=sa.text("status = 'active'"),
    )
    op.create_index("ix_customer_identities_value", "customer_identities", ["value"])
    op.create_index("ix_customer_identities_customer", "customer_identities", ["customer_id"])
    # Every existing customer: its number becomes its first identity (seen times as known, else now).
    op.execute(
        """INSERT INTO customer_identities
            (customer_id, kind, value, status, evidence, first_seen_at, last_seen_at)
        SELECT id, 'phone', wa_id, 'active', 'migrated',
            COALESCE(first_seen_at, CURRENT_TIMESTAMP), COALESCE(last_seen_at, CURRENT_TIMESTAMP)
        FROM customers"""
    )
    if dialect == "sqlite":
        _rebuild_sqlite_customers(
            SQLITE_CUSTOMERS,
            'id, "key", name, first_seen_at, last_seen_at',
            "id, wa_id, name, first_seen_at, last_seen_at",
        )
    else:
        op.execute("DROP TRIGGER customers_number_fixed ON customers")
        op.add_column("customers", sa.Column("key", sa.String(32)))
        op.execute('UPDATE customers SET "key" = wa_id')
        op.alter_column("customers", "key", nullable=False)
        op.create_unique_constraint("uq_customers_key", "customers", ["key"])
        op.drop_column("customers", "wa_id")
        op.add_column("customers", sa.Column("username", sa.String(64)))
        op.add_column("customers", sa.Column("merged_into", sa.Integer, sa.ForeignKey("customers.id")))
        op.create_check_constraint(
            "ck_customers_not_merged_into_self", "customers", "merged_into IS NULL OR merged_into <> id"
        )
    op.create_table(
        "customer_merges",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("from_customer_id", sa.Integer, sa.ForeignKey("customers.id"), nullable=False, unique=True),
        sa.Column("into_customer_id", sa.Integer, sa.ForeignKey("customers.id"), nullable=False),
        sa.Column("evidence", sa.String(32), nullable=False),
        sa.Column("message_id", sa.String(255)),
        sa.Column("merged_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "unidentified_events",
        sa.Column("reason", sa.String(64), primary_key=True),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.add_column("consent_events", sa.Column("identifier_kind", sa.String(16)))
    op.add_column("consent_events", sa.Column("identifier_value", sa.String(160)))
    op.execute("ALTER TABLE inbound_messages RENAME COLUMN wa_id TO customer_key")
    op.drop_index("ix_broadcast_deliveries_wa_id", "broadcast_deliveries")
    op.execute("ALTER TABLE broadcast_deliveries RENAME COLUMN wa_id TO customer_key")
    op.create_index(
        "ix_broadcast_deliveries_key", "broadcast_deliveries", ["broadcast_id", "customer_key"], unique=True
    )
    if dialect == "sqlite":
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)
        _check_sqlite_foreign_keys()
    else:
        op.execute(POSTGRESQL_FAMILY_FUNCTION)
        for statement in POSTGRESQL_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    unrepresentable = bind.execute(
        sa.text(
            """SELECT EXISTS (SELECT 1 FROM customer_merges)
            OR EXISTS (SELECT 1 FROM customers WHERE merged_into IS NOT NULL)
            OR EXISTS (SELECT 1 FROM customer_identities WHERE kind <> 'phone' OR status <> 'active')
            OR EXISTS (
                SELECT 1 FROM customers c WHERE (
                    SELECT COUNT(*) FROM customer_identities i WHERE i.customer_id = c.id) <> 1)"""
        )
    ).scalar()
    if unrepresentable:
        raise RuntimeError(
            "refusing to downgrade: customers without exactly one phone number, BSUIDs, number"
            " changes or merges cannot be represented by revision 0004 without losing who holds"
            " which consent record"
        )
    op.drop_index("ix_broadcast_deliveries_key", "broadcast_deliveries")
    op.execute("ALTER TABLE broadcast_deliveries RENAME COLUMN customer_key TO wa_id")
    op.create_index(
        "ix_broadcast_deliveries_wa_id", "broadcast_deliveries", ["broadcast_id", "wa_id"], unique=True
    )
    op.execute("ALTER TABLE inbound_messages RENAME COLUMN customer_key TO wa_id")
    op.drop_column("consent_events", "identifier_value")
    op.drop_column("consent_events", "identifier_kind")
    op.drop_table("unidentified_events")
    op.drop_table("customer_merges")
    wa_id_of = "(SELECT value FROM customer_identities i WHERE i.customer_id = customers.id)"
    if dialect == "sqlite":
        _rebuild_sqlite_customers(
            """CREATE TABLE customers (
                id INTEGER NOT NULL PRIMARY KEY,
                wa_id VARCHAR(32) NOT NULL UNIQUE,
                name VARCHAR(255),
                first_seen_at DATETIME,
                last_seen_at DATETIME
            )""",
            "id, wa_id, name, first_seen_at, last_seen_at",
            f"id, {wa_id_of}, name, first_seen_at, last_seen_at",
        )
        op.drop_table("customer_identities")
        customer_guards = (
            "customers_opt_out_no_delete",
            "customers_number_fixed",
            "customers_opt_out_no_replace",
        )
        for statement in _0002_customer_triggers(dialect, customer_guards):
            op.execute(statement)
        _check_sqlite_foreign_keys()
    else:
        for trigger in ("customers_key_fixed", "customers_merge_permanent"):
            op.execute(f"DROP TRIGGER {trigger} ON customers")
        op.add_column("customers", sa.Column("wa_id", sa.String(32)))
        op.execute(f"UPDATE customers SET wa_id = {wa_id_of}")
        op.alter_column("customers", "wa_id", nullable=False)
        op.create_unique_constraint("customers_wa_id_key", "customers", ["wa_id"])
        op.drop_constraint("ck_customers_not_merged_into_self", "customers")
        op.drop_column("customers", "merged_into")
        op.drop_column("customers", "username")
        op.drop_column("customers", "key")
        op.drop_table("customer_identities")
        op.execute(POSTGRESQL_OLD_FUNCTION)
        for statement in _0002_customer_triggers(dialect, ["customers_number_fixed"]):
            op.execute(statement)


def _rebuild_sqlite_customers(create: str, columns: str, select: str) -> None:
    """SQLite's way to drop or add a UNIQUE column: copy into a new table, swap. Foreign keys are
    off for the migration (env.py), so the other tables' references survive the swap."""
    op.execute(create.replace("CREATE TABLE customers", "CREATE TABLE customers_new", 1))
    op.execute(f"INSERT INTO customers_new ({columns}) SELECT {select} FROM customers")
    op.execute("DROP TABLE customers")  # its triggers go with it
    op.execute("ALTER TABLE customers_new RENAME TO customers")


def _0002_customer_triggers(dialect: str, names: Iterable[str]) -> list[str]:
    """Revision 0002's own CREATE TRIGGER statements for these triggers, from its module as Alembic
    loaded it: a downgrade puts back exactly what 0002 created (that file never changes)."""
    revision_0002 = context.script.get_revision("0002").module
    statements = revision_0002.SQLITE_TRIGGERS if dialect == "sqlite" else revision_0002.POSTGRESQL_TRIGGERS
    wanted = set(names)
    return [statement for statement in statements if statement.split()[2] in wanted]


def _check_sqlite_foreign_keys() -> None:
    problems = op.get_bind().execute(sa.text("PRAGMA foreign_key_check")).all()
    if problems:
        raise RuntimeError(f"foreign keys broken by the migration: {problems[:5]}")

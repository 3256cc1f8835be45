"""An index on customers.merged_into: the consent rule's search for a customer's merged family.

Every consent check (bot/consent.py) looks for OPT_OUT tags, open opt-out requests, erasures and
suppressed identifiers among the customers merged into the one asked about. Without an index
that search read the whole customers table for every customer checked: a broadcast batch of 50
took about 50 ms of SQLite time at 20,000 customers, more than everything else a send costs.

Revision ID: 0008
Revises: 0007
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_customers_merged_into", "customers", ["merged_into"])


def downgrade() -> None:
    op.drop_index("ix_customers_merged_into", table_name="customers")

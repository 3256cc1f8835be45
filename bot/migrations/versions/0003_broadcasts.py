"""Broadcasts: one row per broadcast and one per customer it may reach (bot/broadcast/).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "broadcasts",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("template", sa.String(512), nullable=False),
        sa.Column("language", sa.String(16), nullable=False),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("audience", sa.Text, nullable=False),
        sa.Column("rate", sa.Float, nullable=False),
        sa.Column("audience_count", sa.Integer, nullable=False),
        sa.Column("excluded_opted_out", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "broadcast_deliveries",
        sa.Column("broadcast_id", sa.String(64), sa.ForeignKey("broadcasts.id"), nullable=False),
        sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.id"), nullable=False),
        sa.Column("wa_id", sa.String(32), nullable=False),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("wamid", sa.String(255)),
        sa.Column("error_code", sa.Integer),
        sa.Column("error_title", sa.Text),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("broadcast_id", "customer_id", name="uq_broadcast_deliveries_customer"),
    )
    op.create_index(
        "ix_broadcast_deliveries_wa_id", "broadcast_deliveries", ["broadcast_id", "wa_id"], unique=True
    )


def downgrade() -> None:
    op.drop_table("broadcast_deliveries")
    op.drop_table("broadcasts")

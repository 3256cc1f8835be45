"""Webhook inbox: dedupe records for inbound messages and delivery statuses of sent ones.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inbound_messages",
        sa.Column("wamid", sa.String(255), primary_key=True),
        sa.Column("wa_id", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
    )
    op.create_table(
        "message_statuses",
        sa.Column("wamid", sa.String(255), primary_key=True),
        sa.Column("recipient_id", sa.String(32)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("rank", sa.Integer, nullable=False),
        sa.Column("error_code", sa.Integer),
        sa.Column("error_title", sa.Text),
        sa.Column("callback_data", sa.String(512)),
        sa.Column("status_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("message_statuses")
    op.drop_table("inbound_messages")

"""Broadcast workers: leased batch claims, throttling per customer, one send rate per number.

1. `broadcast_deliveries` gains the claim's lease (`claimed_by`: the worker, `claimed_at`), so a
   delivery claimed by a worker that died before it sent anything can be taken over, and
   `attempts` / `retry_at` for WhatsApp's per-customer pair limit (131056): the delivery waits
   for its own retry without holding up the rest. New state `claimed` (leased, nothing sent yet)
   sits between `pending` and `sending` (bot/broadcast/deliveries.py).
2. Indexes: the claim query's (broadcast, state, customer), and the delivery's wamid, by which a
   reply quoting the template finds its broadcast and an in-doubt send finds its status.
3. `send_rate_buckets`: one token bucket per business phone number, shared by every worker on
   every host (bot/broadcast/pacing.py): WhatsApp's throughput limit is per number.

Revision ID: 0007
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("broadcast_deliveries") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(96)))
        batch.add_column(sa.Column("claimed_at", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("attempts", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("retry_at", sa.DateTime(timezone=True)))
    op.create_index(
        "ix_broadcast_deliveries_claim", "broadcast_deliveries", ["broadcast_id", "state", "customer_id"]
    )
    op.create_index("ix_broadcast_deliveries_wamid", "broadcast_deliveries", ["wamid"])
    op.create_table(
        "send_rate_buckets",
        sa.Column("phone_number_id", sa.String(64), primary_key=True),
        sa.Column("tokens", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("ceiling", sa.Float),
        sa.Column("lowered_at", sa.Float),
    )


def downgrade() -> None:
    op.drop_table("send_rate_buckets")
    op.drop_index("ix_broadcast_deliveries_wamid", "broadcast_deliveries")
    op.drop_index("ix_broadcast_deliveries_claim", "broadcast_deliveries")
    # The new state means nothing to the old code: a claim that never sent goes back to pending.
    op.execute("UPDATE broadcast_deliveries SET state = 'pending' WHERE state = 'claimed'")
    with op.batch_alter_table("broadcast_deliveries") as batch:
        batch.drop_column("retry_at")
        batch.drop_column("attempts")
        batch.drop_column("claimed_at")
        batch.drop_column("claimed_by")

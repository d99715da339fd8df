"""integrations: outbox deliveries per endpoint and channel, kept in order per lead

- webhook_outbox.event_id: the event's id, shared by its deliveries to every endpoint (the
  receiver's idempotency key); confirmations of a booking share the booking event's id.
- webhook_outbox.channel: webhook | sms | email | sheets (booking confirmations and results-sheet
  rows travel the outbox too).
- webhook_outbox.endpoint: the configured endpoint the message goes to, by name.
- webhook_outbox.ordering_key (+ index with endpoint, created_at): a lead's messages to one
  endpoint are delivered in creation order.
- leads.created_at index: exports page through leads in creation order.

Written by hand; batch mode so SQLite runs it too.

Revision ID: 0005_integrations
Revises: 0004_cost
Create Date: 2026-12-06 04:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_integrations"
down_revision = "0004_cost"
branch_labels = None
depends_on = None

CHANNELS = "channel IN ('webhook', 'sms', 'email', 'sheets')"


def upgrade() -> None:
    with op.batch_alter_table("webhook_outbox") as batch:
        batch.add_column(sa.Column("event_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("channel", sa.String(length=16), nullable=False,
                                   server_default="webhook"))
        batch.add_column(sa.Column("endpoint", sa.String(length=64), nullable=False,
                                   server_default="global"))
        batch.add_column(sa.Column("ordering_key", sa.String(length=64), nullable=True))
        batch.create_check_constraint(batch.f("ck_webhook_outbox_channel_valid"), CHANNELS)
    op.create_index(op.f("ix_webhook_outbox_event_id"), "webhook_outbox", ["event_id"],
                    unique=False)
    op.create_index(op.f("ix_webhook_outbox_ordering_key_endpoint_created_at"), "webhook_outbox",
                    ["ordering_key", "endpoint", "created_at"], unique=False)
    op.create_index(op.f("ix_leads_created_at"), "leads", ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_leads_created_at"), table_name="leads")
    op.drop_index(op.f("ix_webhook_outbox_ordering_key_endpoint_created_at"),
                  table_name="webhook_outbox")
    op.drop_index(op.f("ix_webhook_outbox_event_id"), table_name="webhook_outbox")
    with op.batch_alter_table("webhook_outbox") as batch:
        batch.drop_constraint(batch.f("ck_webhook_outbox_channel_valid"), type_="check")
        batch.drop_column("ordering_key")
        batch.drop_column("endpoint")
        batch.drop_column("channel")
        batch.drop_column("event_id")

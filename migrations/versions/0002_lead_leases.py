"""lead leases: which dialer holds a claimed lead and until when (visible takeovers)

Written by hand; batch mode so SQLite (which cannot ALTER most things) runs it too.

Revision ID: 0002_lead_leases
Revises: 0001_initial
Create Date: 2026-11-21 10:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_lead_leases"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("leads") as batch:
        batch.add_column(sa.Column("lease_owner", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index(batch.f("ix_leads_lease_expires_at"), ["lease_expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("leads") as batch:
        batch.drop_index(batch.f("ix_leads_lease_expires_at"))
        batch.drop_column("lease_expires_at")
        batch.drop_column("lease_owner")

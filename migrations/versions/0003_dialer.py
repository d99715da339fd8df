"""dialer: per-campaign do-not-call entries, how an opt-out came in, and the blocked-dial log

- dnc_entries.campaign_id: NULL for the global (company) list, else the campaign the entry
  suppresses the number for. One entry per phone globally and one per (phone, campaign), as two
  partial unique indexes (a plain UNIQUE would let NULL campaign_ids repeat on Postgres).
- dnc_entries.channel: how the request came in (spoken, keypress, agent_tool, operator, import);
  `source` keeps its coarse vocabulary.
- dial_blocks: every claimed lead the dialer did not dial, with the rule that blocked it.

Written by hand; batch mode so SQLite runs it too.

Revision ID: 0003_dialer
Revises: 0002_lead_leases
Create Date: 2026-11-21 10:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_dialer"
down_revision = "0002_lead_leases"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)
GLOBAL_ONLY = sa.text("campaign_id IS NULL")
CAMPAIGN_ONLY = sa.text("campaign_id IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("dnc_entries") as batch:
        batch.add_column(sa.Column("campaign_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("channel", sa.String(length=16), nullable=True))
        batch.drop_constraint("uq_dnc_entries_phone_e164", type_="unique")
        batch.create_foreign_key(
            batch.f("fk_dnc_entries_campaign_id_campaigns"), "campaigns", ["campaign_id"], ["id"],
            ondelete="CASCADE",
        )
    op.create_index(
        "uq_dnc_entries_global_phone", "dnc_entries", ["phone_e164"], unique=True,
        postgresql_where=GLOBAL_ONLY, sqlite_where=GLOBAL_ONLY,
    )
    op.create_index(
        "uq_dnc_entries_campaign_phone", "dnc_entries", ["phone_e164", "campaign_id"],
        unique=True, postgresql_where=CAMPAIGN_ONLY, sqlite_where=CAMPAIGN_ONLY,
    )
    op.create_table(
        "dial_blocks",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("campaign_id", sa.Uuid(), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("rule_code", sa.String(length=64), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("retry_at", TIMESTAMP, nullable=True),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"],
            name=op.f("fk_dial_blocks_campaign_id_campaigns"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["leads.id"], name=op.f("fk_dial_blocks_lead_id_leads"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dial_blocks")),
    )
    op.create_index(
        op.f("ix_dial_blocks_campaign_id_at"), "dial_blocks", ["campaign_id", "at"], unique=False
    )
    op.create_index(op.f("ix_dial_blocks_lead_id"), "dial_blocks", ["lead_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_dial_blocks_lead_id"), table_name="dial_blocks")
    op.drop_index(op.f("ix_dial_blocks_campaign_id_at"), table_name="dial_blocks")
    op.drop_table("dial_blocks")
    # Campaign-scoped entries cannot live under the old one-entry-per-phone rule.
    op.execute("DELETE FROM dnc_entries WHERE campaign_id IS NOT NULL")
    op.drop_index("uq_dnc_entries_campaign_phone", table_name="dnc_entries")
    op.drop_index("uq_dnc_entries_global_phone", table_name="dnc_entries")
    with op.batch_alter_table("dnc_entries") as batch:
        batch.drop_constraint(batch.f("fk_dnc_entries_campaign_id_campaigns"), type_="foreignkey")
        batch.drop_column("channel")
        batch.drop_column("campaign_id")
        batch.create_unique_constraint(batch.f("uq_dnc_entries_phone_e164"), ["phone_e164"])

"""cost: weekly budgets in a time zone, budget alerts, the spending stop, Twilio price
reconciliation and voice-tier decisions

- budgets.period may be 'week'; budgets.timezone (IANA, default UTC) places day/week/month
  boundaries at local midnights.
- budget_alerts: each threshold or forecast alert once per (scope, period window, kind,
  threshold), enforced by a unique constraint so restarts and several daemons fire it once.
- spending_stop: the emergency stop, one row (id = 1).
- cost_reconciliations: Twilio's reported call price against our metered telephony.
- tier_decisions: why a call (or a stage of it) got the local or the premium voice.

Written from autogenerate output, reviewed; batch mode so SQLite runs it too.

Revision ID: 0004_cost
Revises: 0003_dialer
Create Date: 2026-11-21 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_cost"
down_revision = "0003_dialer"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("budgets") as batch:
        batch.add_column(
            sa.Column("timezone", sa.String(length=64), server_default="UTC", nullable=False)
        )
        batch.drop_constraint(batch.f("ck_budgets_period_valid"), type_="check")
        batch.create_check_constraint(
            "period_valid", "period IN ('day', 'week', 'month', 'total')"
        )
    op.create_table(
        "budget_alerts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("scope", sa.String(length=36), nullable=False),
        sa.Column("period", sa.String(length=8), nullable=False),
        sa.Column("period_start", TIMESTAMP, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("threshold_pct", sa.Integer(), nullable=False),
        sa.Column("spent_micros", sa.BigInteger(), nullable=False),
        sa.Column("limit_micros", sa.BigInteger(), nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.CheckConstraint(
            "kind IN ('threshold', 'forecast')", name=op.f("ck_budget_alerts_kind_valid")
        ),
        sa.CheckConstraint(
            "period IN ('day', 'week', 'month', 'total')",
            name=op.f("ck_budget_alerts_period_valid"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_budget_alerts")),
        sa.UniqueConstraint(
            "scope", "period", "period_start", "kind", "threshold_pct",
            name=op.f("uq_budget_alerts_scope_period_period_start_kind_threshold_pct"),
        ),
    )
    op.create_table(
        "spending_stop",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("stopped", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("changed_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_spending_stop_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_spending_stop")),
    )
    op.create_table(
        "cost_reconciliations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("call_id", sa.Uuid(), nullable=True),
        sa.Column("call_sid", sa.String(length=64), nullable=False),
        sa.Column("campaign_id", sa.Uuid(), nullable=True),
        sa.Column("metered_micros", sa.BigInteger(), nullable=False),
        sa.Column("reported_micros", sa.BigInteger(), nullable=False),
        sa.Column("difference_micros", sa.BigInteger(), nullable=False),
        sa.Column("price_unit", sa.String(length=8), nullable=False),
        sa.Column("reported_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["call_id"], ["calls.id"], name=op.f("fk_cost_reconciliations_call_id_calls"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"],
            name=op.f("fk_cost_reconciliations_campaign_id_campaigns"), ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cost_reconciliations")),
        sa.UniqueConstraint("call_sid", name=op.f("uq_cost_reconciliations_call_sid")),
    )
    op.create_index(
        op.f("ix_cost_reconciliations_call_id"), "cost_reconciliations", ["call_id"], unique=False
    )
    op.create_index(
        op.f("ix_cost_reconciliations_reported_at"), "cost_reconciliations", ["reported_at"],
        unique=False,
    )
    op.create_table(
        "tier_decisions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("call_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(length=64), nullable=True),
        sa.Column("tier", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("lead_score", sa.Integer(), nullable=True),
        sa.Column("expected_value_micros", sa.BigInteger(), nullable=False),
        sa.Column("marginal_cost_micros", sa.BigInteger(), nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.CheckConstraint(
            "tier IN ('local', 'premium')", name=op.f("ck_tier_decisions_tier_valid")
        ),
        sa.ForeignKeyConstraint(
            ["call_id"], ["calls.id"], name=op.f("fk_tier_decisions_call_id_calls"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tier_decisions")),
        sa.UniqueConstraint("call_id", "seq", name=op.f("uq_tier_decisions_call_id_seq")),
    )


def downgrade() -> None:
    op.drop_table("tier_decisions")
    op.drop_index(op.f("ix_cost_reconciliations_reported_at"), table_name="cost_reconciliations")
    op.drop_index(op.f("ix_cost_reconciliations_call_id"), table_name="cost_reconciliations")
    op.drop_table("cost_reconciliations")
    op.drop_table("spending_stop")
    op.drop_table("budget_alerts")
    # Weekly budgets cannot live under the old vocabulary.
    op.execute("DELETE FROM budgets WHERE period = 'week'")
    with op.batch_alter_table("budgets") as batch:
        batch.drop_constraint(batch.f("ck_budgets_period_valid"), type_="check")
        batch.create_check_constraint("period_valid", "period IN ('day', 'month', 'total')")
        batch.drop_column("timezone")

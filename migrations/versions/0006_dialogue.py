"""dialogue: the playbook and A/B variant of each call, the agent's decisions, outcome names

- calls.playbook, calls.prompt_variant (+ an index with prompt_version): what the A/B report
  groups by. calls.prompt_version already existed and is now written (label@hash).
- agent_decisions: every tool the agent used or was refused, with its evidence.
- calls.outcome: "dnc_request" becomes "opted_out" (rows included), "wrong_person" is added,
  so the stored outcomes are those of the issue (qualified, not_qualified, booked, callback,
  not_interested, opted_out, voicemail, wrong_person, failed) plus telephony's no_answer and
  unknown.

Written by hand; batch mode so SQLite runs it too.

Revision ID: 0006_dialogue
Revises: 0005_integrations
Create Date: 2026-12-07 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006_dialogue"
down_revision = "0005_integrations"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)
JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")

OLD_OUTCOMES = ("qualified", "not_qualified", "booked", "callback", "not_interested",
                "dnc_request", "voicemail", "no_answer", "failed", "unknown")
NEW_OUTCOMES = ("qualified", "not_qualified", "booked", "callback", "not_interested",
                "opted_out", "wrong_person", "voicemail", "no_answer", "failed", "unknown")


def _outcomes(values: tuple[str, ...]) -> str:
    return "outcome IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def upgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("playbook", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("prompt_variant", sa.String(length=48), nullable=True))
        batch.drop_constraint(op.f("ck_calls_outcome_valid"), type_="check")
    op.execute("UPDATE calls SET outcome = 'opted_out' WHERE outcome = 'dnc_request'")
    with op.batch_alter_table("calls") as batch:
        batch.create_check_constraint("outcome_valid", _outcomes(NEW_OUTCOMES))
    op.create_index(op.f("ix_calls_playbook_prompt_version"), "calls",
                    ["playbook", "prompt_version"], unique=False)
    op.create_table(
        "agent_decisions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("call_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(length=64), nullable=False),
        sa.Column("tool", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("args", JSON_DOC, nullable=False),
        sa.Column("evidence", JSON_DOC, nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.CheckConstraint("status IN ('done', 'proposed', 'refused', 'failed')",
                           name=op.f("ck_agent_decisions_status_valid")),
        sa.ForeignKeyConstraint(["call_id"], ["calls.id"],
                                name=op.f("fk_agent_decisions_call_id_calls"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_decisions")),
        sa.UniqueConstraint("call_id", "seq", name=op.f("uq_agent_decisions_call_id_seq")),
    )


def downgrade() -> None:
    op.drop_table("agent_decisions")
    op.drop_index(op.f("ix_calls_playbook_prompt_version"), table_name="calls")
    with op.batch_alter_table("calls") as batch:
        batch.drop_constraint(op.f("ck_calls_outcome_valid"), type_="check")
    op.execute("UPDATE calls SET outcome = 'dnc_request' WHERE outcome = 'opted_out'")
    # The old vocabulary had no wrong_person: such calls fall back to unknown.
    op.execute("UPDATE calls SET outcome = 'unknown' WHERE outcome = 'wrong_person'")
    with op.batch_alter_table("calls") as batch:
        batch.create_check_constraint("outcome_valid", _outcomes(OLD_OUTCOMES))
        batch.drop_column("prompt_variant")
        batch.drop_column("playbook")

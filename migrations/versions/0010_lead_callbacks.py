"""lead callbacks: a lead who asked to be called back has status 'callback'

The dialer claims due callbacks before new leads and retries (reautod.campaigns.lead_queue);
until now a requested callback was an ordinary retry and waited behind higher-priority leads.

Written by hand; batch mode so SQLite runs it too.

Revision ID: 0010_lead_callbacks
Revises: 0009_refresh_tokens
Create Date: 2026-12-06 15:30:00
"""

from __future__ import annotations

from alembic import op

revision = "0010_lead_callbacks"
down_revision = "0009_refresh_tokens"
branch_labels = None
depends_on = None

_BEFORE = ("'new', 'retry', 'dialing', 'in_call', 'qualified', 'not_qualified', 'booked', "
           "'not_interested', 'dnc', 'exhausted', 'failed'")
_AFTER = ("'new', 'retry', 'callback', 'dialing', 'in_call', 'qualified', 'not_qualified', "
          "'booked', 'not_interested', 'dnc', 'exhausted', 'failed'")


def upgrade() -> None:
    with op.batch_alter_table("leads") as batch:
        batch.drop_constraint(batch.f("ck_leads_status_valid"), type_="check")
        batch.create_check_constraint("status_valid", f"status IN ({_AFTER})")


def downgrade() -> None:
    # A callback becomes the plain retry it was before this revision, at the same time.
    op.execute("UPDATE leads SET status = 'retry' WHERE status = 'callback'")
    with op.batch_alter_table("leads") as batch:
        batch.drop_constraint(batch.f("ck_leads_status_valid"), type_="check")
        batch.create_check_constraint("status_valid", f"status IN ({_BEFORE})")

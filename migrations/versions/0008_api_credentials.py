"""api credentials: the admin API's tokens (by jti) and API keys (hashed), each revocable

- api_credentials: one row per JWT `token.create` made (its jti: a revoked one is refused) and
  per API key (only the SHA-256 of its secret), with subject, role, who made it, expiry and
  revocation.

Written by hand; batch mode so SQLite runs it too.

Revision ID: 0008_api_credentials
Revises: 0007_security
Create Date: 2026-12-06 11:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_api_credentials"
down_revision = "0007_security"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "api_credentials",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("secret_sha256", sa.String(length=64), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=True),
        sa.Column("revoked_at", TIMESTAMP, nullable=True),
        sa.Column("revoked_by", sa.String(length=128), nullable=True),
        sa.CheckConstraint("kind IN ('token', 'api_key')",
                           name=op.f("ck_api_credentials_kind_valid")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_credentials")),
    )
    op.create_index(op.f("ix_api_credentials_kind_created_at"), "api_credentials",
                    ["kind", "created_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_api_credentials_kind_created_at"), table_name="api_credentials")
    op.drop_table("api_credentials")

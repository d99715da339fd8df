"""refresh tokens: the admin API's revocable refresh tokens, rotated on use

- api_credentials.kind may be 'refresh' (only the SHA-256 of its secret is stored, as for API
  keys).
- api_credentials.family: the first refresh token's id, shared by the refresh tokens it is
  rotated into and the access tokens they make (reuse of a spent one revokes them all).
- api_credentials.spent_at: when a refresh token was exchanged (a second exchange is reuse).

Written by hand; batch mode so SQLite runs it too.

Revision ID: 0009_refresh_tokens
Revises: 0008_api_credentials
Create Date: 2026-12-06 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_refresh_tokens"
down_revision = "0008_api_credentials"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("api_credentials") as batch:
        batch.add_column(sa.Column("family", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("spent_at", TIMESTAMP, nullable=True))
        batch.drop_constraint(batch.f("ck_api_credentials_kind_valid"), type_="check")
        batch.create_check_constraint("kind_valid", "kind IN ('token', 'api_key', 'refresh')")
    op.create_index(op.f("ix_api_credentials_family"), "api_credentials", ["family"],
                    unique=False)


def downgrade() -> None:
    # Refresh tokens cannot live under the old vocabulary; the tokens they made die with them.
    op.execute("DELETE FROM api_credentials WHERE family IS NOT NULL")
    op.drop_index(op.f("ix_api_credentials_family"), table_name="api_credentials")
    with op.batch_alter_table("api_credentials") as batch:
        batch.drop_constraint(batch.f("ck_api_credentials_kind_valid"), type_="check")
        batch.create_check_constraint("kind_valid", "kind IN ('token', 'api_key')")
        batch.drop_column("spent_at")
        batch.drop_column("family")

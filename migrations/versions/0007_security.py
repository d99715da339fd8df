"""security: the audit log hash-chained, its pruning anchors, subject requests and erasures

- audit_log: origin (from where), outcome (result), prev_hash and hash (the chain; existing rows
  are chained here in id order), UNIQUE(prev_hash) so the chain cannot fork.
- audit_anchors: where the chain starts once the retention job has pruned old entries.
- The append-only triggers are replaced: UPDATE is still always refused; DELETE only of rows an
  anchor covers (id <= the newest through_id). audit_anchors is append-only.
- privacy_requests: subject requests with their legal due dates (the subject as a salted hash).
- erased_subjects: salted hashes of erased numbers, never dialed or imported again.

Written by hand; batch mode so SQLite runs it too.

Revision ID: 0007_security
Revises: 0006_dialogue
Create Date: 2026-12-07 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from reautod.store.repositories.audit import GENESIS, AuditContent, chain_hash
from reautod.store.types import UTCDateTime

revision = "0007_security"
down_revision = "0006_dialogue"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)
JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

REFUSE = "SELECT RAISE(ABORT, '{table} is append-only')"
COVERED = "OLD.id <= COALESCE((SELECT MAX(through_id) FROM audit_anchors), 0)"
PG_FUNCTIONS = [
    f"""
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND {COVERED} THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$
""",
    """
CREATE FUNCTION audit_anchors_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_anchors is append-only';
END;
$$
""",
    "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
    "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()",
    "CREATE TRIGGER audit_anchors_append_only BEFORE UPDATE OR DELETE ON audit_anchors "
    "FOR EACH ROW EXECUTE FUNCTION audit_anchors_append_only()",
]
SQLITE_TRIGGERS = [
    "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log "
    f"BEGIN {REFUSE.format(table='audit_log')}; END",
    f"CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log WHEN NOT ({COVERED}) "
    f"BEGIN {REFUSE.format(table='audit_log')}; END",
    "CREATE TRIGGER audit_anchors_no_update BEFORE UPDATE ON audit_anchors "
    f"BEGIN {REFUSE.format(table='audit_anchors')}; END",
    "CREATE TRIGGER audit_anchors_no_delete BEFORE DELETE ON audit_anchors "
    f"BEGIN {REFUSE.format(table='audit_anchors')}; END",
]
# 0001's triggers, restored by downgrade.
PG_OLD = [
    """
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$
""",
    "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
    "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()",
]
SQLITE_OLD = [
    f"CREATE TRIGGER audit_log_no_{name.lower()} BEFORE {name} ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"
    for name in ("UPDATE", "DELETE")
]


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _drop_triggers() -> None:
    if _postgres():
        op.execute("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
        op.execute("DROP TRIGGER IF EXISTS audit_anchors_append_only ON audit_anchors")
        op.execute("DROP FUNCTION IF EXISTS audit_anchors_append_only()")
    else:
        for name in ("audit_log_no_update", "audit_log_no_delete", "audit_anchors_no_update",
                     "audit_anchors_no_delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")


def _chain_existing_rows() -> None:
    log = sa.table(
        "audit_log",
        sa.column("id", sa.BigInteger()), sa.column("at", UTCDateTime()),
        sa.column("actor", sa.String()), sa.column("action", sa.String()),
        sa.column("target_type", sa.String()), sa.column("target_id", sa.String()),
        sa.column("detail", JSON_DOC), sa.column("origin", sa.String()),
        sa.column("outcome", sa.String()), sa.column("prev_hash", sa.String()),
        sa.column("hash", sa.String()),
    )
    conn = op.get_bind()
    prev = GENESIS
    for row in conn.execute(sa.select(log).order_by(log.c.id)).mappings().all():
        content = AuditContent(row["at"], row["actor"], row["action"], None, "ok",
                               row["target_type"], row["target_id"], row["detail"] or {})
        digest = chain_hash(prev, content)
        conn.execute(sa.update(log).where(log.c.id == row["id"]).values(
            outcome="ok", prev_hash=prev, hash=digest))
        prev = digest


def upgrade() -> None:
    _drop_triggers()
    op.create_table(
        "audit_anchors",
        sa.Column("id", BIGINT_PK, autoincrement=True, nullable=False),
        sa.Column("through_id", sa.BigInteger(), nullable=False),
        sa.Column("through_hash", sa.String(length=64), nullable=False),
        sa.Column("pruned", sa.Integer(), nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_anchors")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("origin", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("outcome", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("hash", sa.String(length=64), nullable=True))
    _chain_existing_rows()
    # SQLite: rebuilt with AUTOINCREMENT, so ids are never reused once pruned
    with op.batch_alter_table("audit_log", recreate="auto",
                              table_kwargs={"sqlite_autoincrement": True}) as batch:
        for column in ("outcome", "prev_hash", "hash"):
            batch.alter_column(column, existing_type=sa.String(length=64), nullable=False)
        batch.create_unique_constraint(batch.f("uq_audit_log_prev_hash"), ["prev_hash"])

    op.create_table(
        "privacy_requests",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("regime", sa.String(length=16), nullable=False),
        sa.Column("subject_hash", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("received_at", TIMESTAMP, nullable=False),
        sa.Column("acknowledge_by", TIMESTAMP, nullable=True),
        sa.Column("due_at", TIMESTAMP, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("completed_at", TIMESTAMP, nullable=True),
        sa.Column("receipt", JSON_DOC, nullable=False),
        sa.CheckConstraint("kind IN ('export', 'erase')",
                           name=op.f("ck_privacy_requests_kind_valid")),
        sa.CheckConstraint("regime IN ('gdpr', 'uk_gdpr', 'ccpa')",
                           name=op.f("ck_privacy_requests_regime_valid")),
        sa.CheckConstraint("status IN ('open', 'completed', 'failed')",
                           name=op.f("ck_privacy_requests_status_valid")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_requests")),
    )
    op.create_index(op.f("ix_privacy_requests_subject_hash"), "privacy_requests",
                    ["subject_hash"], unique=False)
    op.create_index(op.f("ix_privacy_requests_status_due_at"), "privacy_requests",
                    ["status", "due_at"], unique=False)
    op.create_table(
        "erased_subjects",
        sa.Column("subject_hash", sa.String(length=64), nullable=False),
        sa.Column("salt_id", sa.String(length=16), nullable=False),
        sa.Column("erased_at", TIMESTAMP, nullable=False),
        sa.Column("request_id", sa.Uuid(), nullable=True),
        sa.PrimaryKeyConstraint("subject_hash", name=op.f("pk_erased_subjects")),
    )
    for statement in PG_FUNCTIONS if _postgres() else SQLITE_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    _drop_triggers()
    op.drop_table("erased_subjects")
    op.drop_index(op.f("ix_privacy_requests_status_due_at"), table_name="privacy_requests")
    op.drop_index(op.f("ix_privacy_requests_subject_hash"), table_name="privacy_requests")
    op.drop_table("privacy_requests")
    with op.batch_alter_table("audit_log", table_kwargs={"sqlite_autoincrement": False}) as batch:
        batch.drop_constraint(batch.f("uq_audit_log_prev_hash"), type_="unique")
        batch.drop_column("hash")
        batch.drop_column("prev_hash")
        batch.drop_column("outcome")
        batch.drop_column("origin")
    op.drop_table("audit_anchors")
    for statement in PG_OLD if _postgres() else SQLITE_OLD:
        op.execute(statement)

"""Leases, kills and idempotency keys.

- run.lease_hash: the current attempt's secret (hashed); every worker message after the claim carries it.
- run.last_kill_epoch: where the run's process was last killed by a signal (twice at one epoch: it fails).
- idempotency_key: create requests a client may retry without making a second run or study.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("run") as batch:
        batch.add_column(sa.Column("lease_hash", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("last_kill_epoch", sa.Integer(), nullable=True))
    op.create_table(
        "idempotency_key",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(length=20), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("run_ids", sa.JSON(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("scope", "key", name="uq_idempotency_key_scope_key"),
    )


def downgrade() -> None:
    op.drop_table("idempotency_key")
    with op.batch_alter_table("run") as batch:
        batch.drop_column("last_kill_epoch")
        batch.drop_column("lease_hash")

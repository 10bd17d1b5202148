"""Runs that last: artifacts (checkpoints and final weights), archive, retry, resume, per-epoch system figures.

- artifact: the files a run's worker uploaded (DATA_DIR/artifacts/<run>/<name>), with size and sha256.
- run.attempt_base: attempts made before the latest retry (the lost-run budget counts from there).
- run.resumed_from: the checkpoint epoch the current attempt resumed from.
- run.archived_at, study.archived_at: hidden from the default lists.
- epoch_metric.system: process RSS, CPU time and GPU memory of the epoch.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("run") as batch:
        batch.add_column(sa.Column("attempt_base", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("resumed_from", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("archived_at", sa.DateTime(), nullable=True))
    with op.batch_alter_table("run") as batch:
        batch.alter_column("attempt_base", server_default=None)
    with op.batch_alter_table("study") as batch:
        batch.add_column(sa.Column("archived_at", sa.DateTime(), nullable=True))
    with op.batch_alter_table("epoch_metric") as batch:
        batch.add_column(sa.Column("system", sa.JSON(), nullable=True))
    op.create_table(
        "artifact",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["run.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "name", name="uq_artifact_run_name"),
    )
    op.create_index("ix_artifact_run_id", "artifact", ["run_id"])


def downgrade() -> None:
    op.drop_index("ix_artifact_run_id", table_name="artifact")
    op.drop_table("artifact")
    with op.batch_alter_table("epoch_metric") as batch:
        batch.drop_column("system")
    with op.batch_alter_table("study") as batch:
        batch.drop_column("archived_at")
    with op.batch_alter_table("run") as batch:
        batch.drop_column("archived_at")
        batch.drop_column("resumed_from")
        batch.drop_column("attempt_base")

"""worker.models: the custom model names each worker offers (its TRAINBOARD_MODELS, sent with its heartbeat),
so the API can refuse a spec naming a model no live worker has.

Workers stored before this revision offer none until their next heartbeat.

NOTE for the merge: written in parallel with another 0008; down_revision is "0007" here and is to be rebased
onto "0008" when both land (one head).

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("worker") as batch:
        batch.add_column(sa.Column("models", sa.JSON(), nullable=False, server_default="[]"))
    with op.batch_alter_table("worker") as batch:
        batch.alter_column("models", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("worker") as batch:
        batch.drop_column("models")

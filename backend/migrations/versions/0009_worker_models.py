"""worker.models: the custom model names each worker offers (its TRAINBOARD_MODELS, sent with its heartbeat),
so the API can refuse a spec naming a model no live worker has.

Workers stored before this revision offer none until their next heartbeat.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
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

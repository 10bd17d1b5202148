"""run.queue, run.gpu, run.priority, run.dispatched_at: placement by queue and capability, and fair dispatch
(the API sends the broker only as many run ids as live workers have free slots, by priority, then
round-robin across studies).

Runs queued before this revision count as not sent: the API's first dispatch round sends them again (a
duplicate message finds its run claimed, as before).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("run") as batch:
        batch.add_column(sa.Column("queue", sa.String(length=40), nullable=False, server_default="default"))
        batch.add_column(sa.Column("gpu", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("priority", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("dispatched_at", sa.DateTime(), nullable=True))
    with op.batch_alter_table("run") as batch:
        for column in ("queue", "gpu", "priority"):
            batch.alter_column(column, server_default=None)
    # The round-robin's turns: when each (queue, study) last had a run sent, one index lookup each.
    op.create_index("ix_run_queue_study_dispatched", "run", ["queue", "study_id", "dispatched_at"])
    # Every run that asks for a GPU (queued now, or retried or requeued later) waits in the GPU variant.
    connection = op.get_bind()
    asking = [
        row.id
        for row in connection.execute(sa.text("SELECT id, spec FROM run"))
        if _device(row.spec).startswith("cuda")
    ]
    run = sa.table("run", sa.column("id", sa.Integer()), sa.column("gpu", sa.Boolean()))
    for start in range(0, len(asking), 500):
        connection.execute(sa.update(run).where(run.c.id.in_(asking[start : start + 500])).values(gpu=True))


def _device(spec: object) -> str:
    """A stored spec's device: the JSON column reads back as a dict on PostgreSQL, as text on SQLite."""
    document = json.loads(spec) if isinstance(spec, str) else spec
    return str(document.get("device", "auto")) if isinstance(document, dict) else "auto"


def downgrade() -> None:
    op.drop_index("ix_run_queue_study_dispatched", table_name="run")
    with op.batch_alter_table("run") as batch:
        batch.drop_column("dispatched_at")
        batch.drop_column("priority")
        batch.drop_column("gpu")
        batch.drop_column("queue")

"""run.final_epoch: the epoch whose weights a run ended with (the restored best epoch of an early-stopped run).

Every summary of a run by "the epoch it ended with" — its accuracy, its per-class accuracy, the
confusion matrix — reads this one column. Ended runs get it filled in: the epoch whose test accuracy
is the final one for a run that restored its best weights, else the last epoch.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

run = sa.table(
    "run",
    sa.column("id", sa.Integer()),
    sa.column("status", sa.Enum("queued", "running", "succeeded", "failed", "cancelled", name="runstatus")),
    sa.column("epochs_done", sa.Integer()),
    sa.column("final_test_acc", sa.Float()),
    sa.column("stop_reason", sa.String()),
    sa.column("final_epoch", sa.Integer()),
)
epoch_metric = sa.table(
    "epoch_metric",
    sa.column("run_id", sa.Integer()),
    sa.column("epoch", sa.Integer()),
    sa.column("test_acc", sa.Float()),
)


def upgrade() -> None:
    with op.batch_alter_table("run") as batch:
        batch.add_column(sa.Column("final_epoch", sa.Integer(), nullable=True))
    ended = sa.and_(run.c.status.in_(["succeeded", "failed", "cancelled"]), run.c.epochs_done > 0)
    # The last epoch, for every run that has ended after at least one epoch...
    op.execute(run.update().where(ended).values(final_epoch=run.c.epochs_done))
    # ...except where early stopping restored an earlier epoch: the one whose accuracy the run ended with.
    restored = (
        sa.select(sa.func.min(epoch_metric.c.epoch))
        .where(epoch_metric.c.run_id == run.c.id, epoch_metric.c.test_acc == run.c.final_test_acc)
        .scalar_subquery()
    )
    op.execute(
        run.update()
        .where(ended, run.c.stop_reason.is_not(None), run.c.stop_reason.like("%restored%"))
        .values(final_epoch=sa.func.coalesce(restored, run.c.epochs_done))
    )


def downgrade() -> None:
    with op.batch_alter_table("run") as batch:
        batch.drop_column("final_epoch")

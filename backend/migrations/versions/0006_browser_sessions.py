"""browser_session: the server keeps each logged-in browser's session (its id's sha256 and its expiry), so
the server enforces the session's lifetime and a logout ends it everywhere.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "browser_session",
        sa.Column("sid_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("sid_hash"),
    )
    op.create_index("ix_browser_session_expires_at", "browser_session", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_browser_session_expires_at", table_name="browser_session")
    op.drop_table("browser_session")

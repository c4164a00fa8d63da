"""Run identity: a token that binds a trial's checkpoint folder to that trial of this database,
and the reason a trial that had recorded epochs started again from epoch 1.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("trials") as batch:
        batch.add_column(sa.Column("run_token", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("restart_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("trials") as batch:
        batch.drop_column("restart_reason")
        batch.drop_column("run_token")

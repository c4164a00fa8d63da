"""What each trial's data was: split sizes and sources, normalisation, trainable parameters,
and the learning rate of every parameter group per epoch.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("trials") as batch:
        batch.add_column(sa.Column("n_trainable_params", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("n_train", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("n_val", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("n_test", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("data", sa.JSON(), nullable=True))
    with op.batch_alter_table("epochs") as batch:
        batch.add_column(sa.Column("group_lrs", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("epochs") as batch:
        batch.drop_column("group_lrs")
    with op.batch_alter_table("trials") as batch:
        for name in ("data", "n_test", "n_val", "n_train", "n_trainable_params"):
            batch.drop_column(name)

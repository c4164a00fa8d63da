"""Provenance of each trial: ablate's version, the study file's hash, a dirty flag for its git revision.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # batch mode: SQLite cannot drop columns in place (downgrade), and keeps the table's constraints.
    with op.batch_alter_table("environments") as batch:
        batch.add_column(sa.Column("git_dirty", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("ablate_version", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("study_sha256", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("environments") as batch:
        batch.drop_column("study_sha256")
        batch.drop_column("ablate_version")
        batch.drop_column("git_dirty")

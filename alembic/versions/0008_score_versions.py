"""Each score row records the `scores_version` of the transaction that wrote it.

A cached population used to reload every score of its configuration whenever one more was written: 3 s at
100,000 architectures, paid by the first leaderboard request after every write of a running batch. With the
version on each row, the cache reads only the rows newer than its own version. Existing rows get 0, which is
below every counter that scores were ever written under, so they belong to every snapshot.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN, as in 0007: rebuilding `scores` would be slow and gains nothing.
    op.add_column("scores", sa.Column("version", sa.Integer(), server_default="0", nullable=False))
    op.create_index("ix_scores_config_version", "scores", ["config_id", "version"])


def downgrade() -> None:
    op.drop_index("ix_scores_config_version", table_name="scores")
    op.drop_column("scores", "version")

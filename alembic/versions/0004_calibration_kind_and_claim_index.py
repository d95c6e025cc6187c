"""Configurations record their kind of calibration source; job items are indexed for claiming in order.

A configuration records what kind of calibration source it was resolved to: `synthetic`, `stored` (its
batch is in `calibration_sets` under `calibration_digest`) or `legacy` (made from a local file before
batches were stored). It replaces the `legacy` flag, so a worker anywhere reads where its data comes from
off the configuration instead of inferring it from which columns happen to be null. Existing rows are
classified from the columns they have: the `legacy` flag, else a stored digest, else synthetic. The server
default (`synthetic`) is what every row was before real data could be stored.

The index on (batch_id, status) gains `id`: a claim takes a job's first pending items in order straight off
it, without sorting every queued item.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CONFIGS = sa.table(
    "scoring_configs",
    sa.column("calibration_kind", sa.String()),
    sa.column("calibration_digest", sa.String()),
    sa.column("legacy", sa.Boolean()),
)


def upgrade() -> None:
    # Plain ADD/DROP COLUMN on both backends: SQLite's batch mode would copy and drop a table others reference.
    op.add_column(
        "scoring_configs",
        sa.Column("calibration_kind", sa.String(16), server_default="synthetic", nullable=False),
    )
    op.execute(CONFIGS.update().where(CONFIGS.c.legacy.is_(True)).values(calibration_kind="legacy"))
    stored = CONFIGS.c.legacy.is_(False) & CONFIGS.c.calibration_digest.is_not(None)
    op.execute(CONFIGS.update().where(stored).values(calibration_kind="stored"))
    op.drop_column("scoring_configs", "legacy")
    op.create_index("ix_batch_items_batch_status_id", "batch_items", ["batch_id", "status", "id"])
    op.drop_index("ix_batch_items_batch_status", "batch_items")


def downgrade() -> None:
    op.create_index("ix_batch_items_batch_status", "batch_items", ["batch_id", "status"])
    op.drop_index("ix_batch_items_batch_status_id", "batch_items")
    op.add_column("scoring_configs", sa.Column("legacy", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.execute(CONFIGS.update().where(CONFIGS.c.calibration_kind == "legacy").values(legacy=True))
    op.drop_column("scoring_configs", "calibration_kind")

"""Version counters for cached populations: `scoring_configs.scores_version` and `observation_versions`.

A cached population used to be checked by counting its score and observation rows on every request, which
scans the whole index once a space holds 100,000 architectures. Writers now bump a counter in the same
transaction, so the check reads one small row. Configurations that already have scores start at 1 (a
population is read only from configurations whose counter is above 0), and existing observations get a
counter row, so deleting them later still moves a counter.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN on both backends: rebuilding the table (SQLite's batch mode) would drop a table
    # that scores and jobs reference.
    op.add_column("scoring_configs", sa.Column("scores_version", sa.Integer(), server_default="0", nullable=False))
    op.execute("UPDATE scoring_configs SET scores_version = 1 WHERE id IN (SELECT DISTINCT config_id FROM scores)")
    op.create_table(
        "observation_versions",
        sa.Column("dataset", sa.String(64), nullable=False),
        sa.Column("metric", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("dataset", "metric", name="pk_observation_versions"),
    )
    op.execute(
        "INSERT INTO observation_versions (dataset, metric, version) "
        "SELECT DISTINCT dataset, metric, 1 FROM observations"
    )


def downgrade() -> None:
    op.drop_table("observation_versions")
    op.drop_column("scoring_configs", "scores_version")

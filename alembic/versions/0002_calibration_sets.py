"""Calibration data as content-addressed image sets in the database; score provenance.

Configurations made before this revision named their real data by a local file and its digest. They stay
readable and keep their scores; they are marked `legacy` (they cannot be scored again) until `nasscore
data add` is given the file they were made from, which stores their batch and revives them.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "calibration_sets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("dataset", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("images", sa.LargeBinary(), nullable=False),
        sa.Column("labels", sa.LargeBinary(), nullable=False),
        sa.Column("origin", sa.Text(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_calibration_sets"),
        sa.UniqueConstraint("digest", name="uq_calibration_sets_digest"),
    )
    op.create_table(
        "dataset_defaults",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dataset", sa.String(64), nullable=False),
        sa.Column("pool_id", sa.Integer(), nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["pool_id"], ["calibration_sets.id"], name="fk_dataset_defaults_pool_id_calibration_sets"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_dataset_defaults"),
        sa.UniqueConstraint("dataset", name="uq_dataset_defaults_dataset"),
    )
    # Plain ADD COLUMN on both backends: SQLite's batch mode would copy and drop tables that others reference.
    op.add_column("scoring_configs", sa.Column("calibration_digest", sa.String(64), nullable=True))
    op.add_column("scoring_configs", sa.Column("pool_digest", sa.String(64), nullable=True))
    op.add_column("scoring_configs", sa.Column("legacy", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.add_column("scores", sa.Column("torch_version", sa.String(32), nullable=True))
    configs = sa.table("scoring_configs", sa.column("data_source", sa.Text()), sa.column("legacy", sa.Boolean()))
    op.execute(configs.update().where(~configs.c.data_source.startswith("synthetic")).values(legacy=True))


def downgrade() -> None:
    op.drop_column("scores", "torch_version")
    for name in ("legacy", "pool_digest", "calibration_digest"):
        op.drop_column("scoring_configs", name)
    op.drop_table("dataset_defaults")
    op.drop_table("calibration_sets")

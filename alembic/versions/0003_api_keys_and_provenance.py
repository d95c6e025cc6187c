"""API keys (hashed tokens with a scope), batch owners, and observations kept per source with who posted them.

Observations were one value per (architecture, dataset, metric), so a later post silently replaced a
benchmark import; from here each `source` keeps its own value. Existing rows keep their source and get no
`posted_by` (they were written before keys existed).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)
OLD_UNIQUE = ("uq_observations_architecture_id_dataset_metric", ["architecture_id", "dataset", "metric"])
NEW_UNIQUE = ("uq_observations_architecture_id_dataset_metric_source", [*OLD_UNIQUE[1], "source"])


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("revoked_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("name", name="uq_api_keys_name"),
        sa.UniqueConstraint("token_sha256", name="uq_api_keys_token_sha256"),
    )
    op.add_column("batch_jobs", sa.Column("owner", sa.String(64), nullable=True))
    # Nothing references `observations`, so SQLite's batch mode may copy it to swap the unique constraint.
    with op.batch_alter_table("observations") as batch:
        batch.add_column(sa.Column("posted_by", sa.String(64), nullable=True))
        batch.drop_constraint(OLD_UNIQUE[0], type_="unique")
        batch.create_unique_constraint(*NEW_UNIQUE)


def downgrade() -> None:
    # Going back to one value per (architecture, dataset, metric) keeps each key's most recent observation.
    observations = sa.table(
        "observations",
        sa.column("id", sa.Integer()),
        sa.column("architecture_id", sa.Integer()),
        sa.column("dataset", sa.String()),
        sa.column("metric", sa.String()),
    )
    newest = (
        sa.select(sa.func.max(observations.c.id))
        .group_by(observations.c.architecture_id, observations.c.dataset, observations.c.metric)
        .scalar_subquery()
    )
    op.execute(observations.delete().where(observations.c.id.not_in(newest)))
    with op.batch_alter_table("observations") as batch:
        batch.drop_constraint(NEW_UNIQUE[0], type_="unique")
        batch.create_unique_constraint(*OLD_UNIQUE)
        batch.drop_column("posted_by")
    op.drop_column("batch_jobs", "owner")
    op.drop_table("api_keys")

"""Initial schema: search spaces, architectures, scoring configurations, scores, observations, jobs.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)


def _id() -> sa.Column:
    return sa.Column("id", sa.Integer(), nullable=False)


def upgrade() -> None:
    op.create_table(
        "search_spaces",
        _id(),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_search_spaces"),
        sa.UniqueConstraint("name", name="uq_search_spaces_name"),
    )
    op.create_table(
        "scoring_configs",
        _id(),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("dataset", sa.String(64), nullable=False),
        sa.Column("data_source", sa.Text(), nullable=False),
        sa.Column("batch_size", sa.Integer(), nullable=False),
        sa.Column("sampling", sa.String(16), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("init", sa.String(32), nullable=False),
        sa.Column("proxy_version", sa.String(32), nullable=False),
        sa.Column("model_params", sa.JSON(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_scoring_configs"),
        sa.UniqueConstraint("fingerprint", name="uq_scoring_configs_fingerprint"),
    )
    op.create_table(
        "architectures",
        _id(),
        sa.Column("space_id", sa.Integer(), nullable=False),
        sa.Column("arch", sa.String(512), nullable=False),
        sa.Column("canonical_key", sa.Text(), nullable=False),
        sa.Column("benchmark_index", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["space_id"], ["search_spaces.id"], name="fk_architectures_space_id_search_spaces"),
        sa.PrimaryKeyConstraint("id", name="pk_architectures"),
        sa.UniqueConstraint("space_id", "arch", name="uq_architectures_space_id_arch"),
    )
    op.create_index("ix_architectures_space_canonical", "architectures", ["space_id", "canonical_key"])
    op.create_index("ix_architectures_space_benchmark_index", "architectures", ["space_id", "benchmark_index"])
    op.create_table(
        "scores",
        _id(),
        sa.Column("architecture_id", sa.Integer(), nullable=False),
        sa.Column("config_id", sa.Integer(), nullable=False),
        sa.Column("proxy", sa.String(64), nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("seconds", sa.Double(), nullable=True),
        sa.Column("device", sa.String(32), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("computed_from_id", sa.Integer(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["architecture_id"], ["architectures.id"], name="fk_scores_architecture_id_architectures"
        ),
        sa.ForeignKeyConstraint(
            ["computed_from_id"], ["architectures.id"], name="fk_scores_computed_from_id_architectures"
        ),
        sa.ForeignKeyConstraint(["config_id"], ["scoring_configs.id"], name="fk_scores_config_id_scoring_configs"),
        sa.PrimaryKeyConstraint("id", name="pk_scores"),
        sa.UniqueConstraint("architecture_id", "config_id", "proxy", name="uq_scores_architecture_id_config_id_proxy"),
    )
    op.create_index("ix_scores_config_proxy", "scores", ["config_id", "proxy"])
    op.create_table(
        "observations",
        _id(),
        sa.Column("architecture_id", sa.Integer(), nullable=False),
        sa.Column("dataset", sa.String(64), nullable=False),
        sa.Column("metric", sa.String(64), nullable=False),
        sa.Column("accuracy", sa.Double(), nullable=False),
        sa.Column("epochs", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(128), nullable=False),
        sa.Column("observed_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["architecture_id"], ["architectures.id"], name="fk_observations_architecture_id_architectures"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_observations"),
        sa.UniqueConstraint(
            "architecture_id", "dataset", "metric", name="uq_observations_architecture_id_dataset_metric"
        ),
    )
    op.create_table(
        "batch_jobs",
        _id(),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("space_id", sa.Integer(), nullable=False),
        sa.Column("config_id", sa.Integer(), nullable=False),
        sa.Column("proxies", sa.JSON(), nullable=False),
        sa.Column("spec_key", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=True),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(["config_id"], ["scoring_configs.id"], name="fk_batch_jobs_config_id_scoring_configs"),
        sa.ForeignKeyConstraint(["space_id"], ["search_spaces.id"], name="fk_batch_jobs_space_id_search_spaces"),
        sa.PrimaryKeyConstraint("id", name="pk_batch_jobs"),
    )
    op.create_index("ix_batch_jobs_spec_status", "batch_jobs", ["spec_key", "status"])
    op.create_table(
        "batch_items",
        _id(),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("architecture_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("claimed_by", sa.String(128), nullable=True),
        sa.Column("lease_until", TIMESTAMP, nullable=True),
        sa.Column("started_at", TIMESTAMP, nullable=True),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(
            ["architecture_id"], ["architectures.id"], name="fk_batch_items_architecture_id_architectures"
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["batch_jobs.id"], name="fk_batch_items_batch_id_batch_jobs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_batch_items"),
        sa.UniqueConstraint("batch_id", "architecture_id", name="uq_batch_items_batch_id_architecture_id"),
    )
    op.create_index("ix_batch_items_status_batch", "batch_items", ["status", "batch_id"])
    op.create_index("ix_batch_items_batch_status", "batch_items", ["batch_id", "status"])


def downgrade() -> None:
    dependents_first = (
        "batch_items",
        "batch_jobs",
        "observations",
        "scores",
        "architectures",
        "scoring_configs",
        "search_spaces",
    )
    for table in dependents_first:
        op.drop_table(table)

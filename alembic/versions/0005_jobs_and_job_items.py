"""One noun for queued work: `batch_jobs` → `jobs`, `batch_items` → `job_items` (its `batch_id` → `job_id`).

A job is either kind (`score` or `batch`), so the tables say *job*. The tables are rebuilt rather than renamed
in place: SQLite cannot rename an index or a named constraint, and a copy gives both backends exactly the
names the ORM's naming convention expects. Rows keep their ids (a batch's URL stays valid); on PostgreSQL the
id sequences continue after the copied rows.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)
JOB_COLUMNS = (
    "id, kind, space_id, config_id, proxies, spec_key, status, priority, total, owner, created_at, started_at, "
    "finished_at"
)
ITEM_COLUMNS = (
    "id, {parent}, architecture_id, status, attempts, error, claimed_by, lease_until, started_at, finished_at"
)


def _create_job_table(name: str) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("space_id", sa.Integer(), nullable=False),
        sa.Column("config_id", sa.Integer(), nullable=False),
        sa.Column("proxies", sa.JSON(), nullable=False),
        sa.Column("spec_key", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(64), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=True),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(["config_id"], ["scoring_configs.id"], name=f"fk_{name}_config_id_scoring_configs"),
        sa.ForeignKeyConstraint(["space_id"], ["search_spaces.id"], name=f"fk_{name}_space_id_search_spaces"),
        sa.PrimaryKeyConstraint("id", name=f"pk_{name}"),
    )
    op.create_index(f"ix_{name}_spec_status", name, ["spec_key", "status"])


def _create_item_table(name: str, parent_table: str, parent: str, index_word: str) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(parent, sa.Integer(), nullable=False),
        sa.Column("architecture_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("claimed_by", sa.String(128), nullable=True),
        sa.Column("lease_until", TIMESTAMP, nullable=True),
        sa.Column("started_at", TIMESTAMP, nullable=True),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(
            ["architecture_id"], ["architectures.id"], name=f"fk_{name}_architecture_id_architectures"
        ),
        sa.ForeignKeyConstraint(
            [parent], [f"{parent_table}.id"], name=f"fk_{name}_{parent}_{parent_table}", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=f"pk_{name}"),
        sa.UniqueConstraint(parent, "architecture_id", name=f"uq_{name}_{parent}_architecture_id"),
    )
    op.create_index(f"ix_{name}_status_{index_word}", name, ["status", parent])
    op.create_index(f"ix_{name}_{index_word}_status_id", name, [parent, "status", "id"])


def _copy(source: str, target: str, columns: str, target_columns: str | None = None) -> None:
    op.execute(f"INSERT INTO {target} ({target_columns or columns}) SELECT {columns} FROM {source}")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"SELECT setval(pg_get_serial_sequence('{target}', 'id'), COALESCE(MAX(id), 0) + 1, false) FROM {target}"
        )


def _move(old_jobs: str, old_items: str, old_parent: str, new_jobs: str, new_items: str, new_parent: str) -> None:
    _create_job_table(new_jobs)
    _create_item_table(new_items, new_jobs, new_parent, "job" if new_parent == "job_id" else "batch")
    _copy(old_jobs, new_jobs, JOB_COLUMNS)
    _copy(old_items, new_items, ITEM_COLUMNS.format(parent=old_parent), ITEM_COLUMNS.format(parent=new_parent))
    op.drop_table(old_items)
    op.drop_table(old_jobs)


def upgrade() -> None:
    _move("batch_jobs", "batch_items", "batch_id", "jobs", "job_items", "job_id")


def downgrade() -> None:
    _move("jobs", "job_items", "job_id", "batch_jobs", "batch_items", "batch_id")

"""ONNX files of the `onnx` search space, stored once per structure digest.

An architecture of every other space is a short text; one of `onnx` is `onnx:<digest>`, and the file it was
read from is kept here so that any worker can rebuild its network.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "onnx_models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("file_sha256", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("nodes", sa.Integer(), nullable=False),
        sa.Column("parameters", sa.Integer(), nullable=False),
        sa.Column("saved_floats_per_image", sa.Integer(), nullable=False),
        sa.Column("input_shape", sa.JSON(), nullable=False),
        sa.Column("num_classes", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_onnx_models"),
        sa.UniqueConstraint("digest", name="uq_onnx_models_digest"),
    )


def downgrade() -> None:
    op.drop_table("onnx_models")

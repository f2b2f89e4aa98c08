"""ops: process heartbeats and the dead-letter republication log

Revision ID: ops_0001
Revises: templates_0003
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "ops_0001"
down_revision: str | Sequence[str] | None = "templates_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ops_heartbeats",
        sa.Column("role", sa.String(64), nullable=False),
        sa.Column("instance", sa.String(255), nullable=False),
        sa.Column("ready", sa.Boolean(), nullable=False),
        sa.Column("checks", sa.JSON(), nullable=False),
        sa.Column("lag", sa.JSON(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("role", "instance", name="pk_ops_heartbeats"),
    )
    op.create_table(
        "ops_republications",
        sa.Column("dlq_topic", sa.String(255), nullable=False),
        sa.Column("dlq_partition", sa.Integer(), nullable=False),
        sa.Column("dlq_offset", sa.BigInteger(), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("original_topic", sa.String(255), nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("republished_by", sa.String(128), nullable=False),
        sa.Column("republished_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("dlq_topic", "dlq_partition", "dlq_offset", name="pk_ops_republications"),
    )
    op.create_index("ix_ops_republications_project", "ops_republications", ["project_id", "republished_at"])


def downgrade() -> None:
    op.drop_index("ix_ops_republications_project", table_name="ops_republications")
    op.drop_table("ops_republications")
    op.drop_table("ops_heartbeats")

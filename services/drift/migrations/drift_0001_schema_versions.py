"""drift: baseline schema versions

Revision ID: drift_0001
Revises:
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "drift_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("drift",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "drift_schema_versions",
        sa.Column("id", sa.Integer(), autoincrement=True),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("connector_id", sa.String(255), nullable=False),
        sa.Column("table_name", sa.String(255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("schema_hash", sa.String(64), nullable=False),
        sa.Column("columns", sa.JSON(), nullable=False),
        sa.Column("observed_event_id", sa.String(36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_drift_schema_versions"),
        sa.UniqueConstraint(
            "project_id", "connector_id", "table_name", "version", name="uq_drift_schema_versions_project_id"
        ),
    )
    op.create_index("ix_drift_schema_versions_project_id", "drift_schema_versions", ["project_id"])


def downgrade() -> None:
    op.drop_index("ix_drift_schema_versions_project_id", "drift_schema_versions")
    op.drop_table("drift_schema_versions")

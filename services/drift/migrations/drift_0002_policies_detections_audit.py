"""drift: policies, detections, audit trail, blocked sources

Revision ID: drift_0002
Revises: drift_0001
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "drift_0002"
down_revision: str | None = "drift_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "drift_policies",
        sa.Column("id", sa.Integer(), autoincrement=True),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("connector_id", sa.String(255), nullable=False),
        sa.Column("table_name", sa.String(255), nullable=False),
        sa.Column("strategies", sa.JSON(), nullable=False),
        sa.Column("updated_by", sa.String(255), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_drift_policies"),
        sa.UniqueConstraint("project_id", "connector_id", "table_name", name="uq_drift_policies_project_id"),
    )
    op.create_table(
        "drift_detections",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("connector_id", sa.String(255), nullable=False),
        sa.Column("table_name", sa.String(255), nullable=False),
        sa.Column("observed_event_id", sa.String(36), nullable=False),
        sa.Column("dialect", sa.String(16), nullable=False),
        sa.Column("baseline_version", sa.Integer(), nullable=False),
        sa.Column("new_version", sa.Integer(), nullable=True),
        sa.Column("before_hash", sa.String(64), nullable=False),
        sa.Column("after_hash", sa.String(64), nullable=False),
        sa.Column("observed_columns", sa.JSON(), nullable=False),
        sa.Column("drifts", sa.JSON(), nullable=False),
        sa.Column("strategy", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("analysis", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_drift_detections"),
    )
    op.create_index(
        "ix_drift_detections_table", "drift_detections", ["project_id", "connector_id", "table_name"]
    )
    op.create_table(
        "drift_audit",
        sa.Column("id", sa.Integer(), autoincrement=True),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("connector_id", sa.String(255), nullable=False),
        sa.Column("table_name", sa.String(255), nullable=False),
        sa.Column("detection_id", sa.String(36), nullable=True),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("strategy", sa.String(16), nullable=True),
        sa.Column("before_hash", sa.String(64), nullable=True),
        sa.Column("after_hash", sa.String(64), nullable=True),
        sa.Column("drifts", sa.JSON(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_drift_audit"),
    )
    op.create_index("ix_drift_audit_table", "drift_audit", ["project_id", "connector_id", "table_name"])
    op.create_table(
        "drift_blocks",
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("connector_id", sa.String(255), nullable=False),
        sa.Column("table_name", sa.String(255), nullable=False),
        sa.Column("detection_id", sa.String(36), nullable=False),
        sa.Column("blocked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "connector_id", "table_name", name="pk_drift_blocks"),
    )


def downgrade() -> None:
    op.drop_table("drift_blocks")
    op.drop_index("ix_drift_audit_table", "drift_audit")
    op.drop_table("drift_audit")
    op.drop_index("ix_drift_detections_table", "drift_detections")
    op.drop_table("drift_detections")
    op.drop_table("drift_policies")

"""templates: template versions, control table, pipeline instances and runs

Revision ID: templates_0001
Revises:
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "templates_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("templates",)
depends_on: str | Sequence[str] | None = None

NOW = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "templates_versions",
        sa.Column("id", sa.Integer(), autoincrement=True),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("template_id", sa.String(255), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("major", sa.Integer(), nullable=False),
        sa.Column("minor", sa.Integer(), nullable=False),
        sa.Column("patch", sa.Integer(), nullable=False),
        sa.Column("pattern", sa.String(32), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("dialect", sa.String(32), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("config_schema", sa.JSON(), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("created_at", NOW, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_templates_versions"),
        sa.UniqueConstraint("project_id", "template_id", "version", name="uq_templates_versions_project_id"),
    )
    op.create_index("ix_templates_versions_project_id", "templates_versions", ["project_id"])
    op.create_table(
        "templates_control_entries",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("source_system", sa.String(255), nullable=False),
        sa.Column("source_object", sa.String(255), nullable=False),
        sa.Column("target_system", sa.String(255), nullable=False),
        sa.Column("target_object", sa.String(255), nullable=False),
        sa.Column("template_id", sa.String(255), nullable=False),
        sa.Column("load_type", sa.String(32), nullable=False),
        sa.Column("watermark_column", sa.String(255), nullable=True),
        sa.Column("keys", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("run_order", sa.Integer(), nullable=False),
        sa.Column("schedule", sa.String(255), nullable=True),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("created_at", NOW, nullable=False),
        sa.Column("updated_at", NOW, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_templates_control_entries"),
        sa.UniqueConstraint(
            "project_id", "target_system", "target_object", name="uq_templates_control_entries_project_id"
        ),
    )
    op.create_index("ix_templates_control_entries_project_id", "templates_control_entries", ["project_id"])
    op.create_table(
        "templates_instances",
        sa.Column("id", sa.Integer(), autoincrement=True),
        sa.Column("instance_id", sa.String(36), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("pipeline_name", sa.String(255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("template_scope", sa.String(64), nullable=False),
        sa.Column("template_id", sa.String(255), nullable=False),
        sa.Column("template_version", sa.String(32), nullable=False),
        sa.Column("dialect", sa.String(32), nullable=False),
        sa.Column("connection", sa.String(255), nullable=False),
        sa.Column("source_system", sa.String(255), nullable=True),
        sa.Column("source_object", sa.String(255), nullable=True),
        sa.Column("control_entry_id", sa.String(36), nullable=True),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("code_sha256", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("drift_event_id", sa.String(36), nullable=True),
        sa.Column("created_at", NOW, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_templates_instances"),
        sa.UniqueConstraint(
            "project_id", "pipeline_name", "version", name="uq_templates_instances_project_id"
        ),
    )
    op.create_index("ix_templates_instances_instance_id", "templates_instances", ["instance_id"])
    op.create_index("ix_templates_instances_project_id", "templates_instances", ["project_id"])
    op.create_table(
        "templates_runs",
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("instance_id", sa.String(36), nullable=False),
        sa.Column("instance_version", sa.Integer(), nullable=False),
        sa.Column("pipeline_name", sa.String(255), nullable=False),
        sa.Column("template_scope", sa.String(64), nullable=False),
        sa.Column("template_id", sa.String(255), nullable=False),
        sa.Column("template_version", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", NOW, nullable=False),
        sa.Column("ended_at", NOW, nullable=False),
        sa.Column("duration_seconds", sa.Float(), nullable=False),
        sa.Column("rows_read", sa.Integer(), nullable=False),
        sa.Column("rows_written", sa.Integer(), nullable=False),
        sa.Column("error_count", sa.Integer(), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("high_watermark", sa.String(255), nullable=True),
        sa.Column("cpu_percent", sa.Float(), nullable=True),
        sa.Column("memory_mb", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("run_id", name="pk_templates_runs"),
    )
    op.create_index("ix_templates_runs_instance_id", "templates_runs", ["instance_id"])
    op.create_index("ix_templates_runs_project_id", "templates_runs", ["project_id"])


def downgrade() -> None:
    for table in (
        "templates_runs",
        "templates_instances",
        "templates_control_entries",
        "templates_versions",
    ):
        op.drop_table(table)

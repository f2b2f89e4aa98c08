"""templates: schedules, run trigger and warnings, portable templates with display names

Revision ID: templates_0003
Revises: core_0003
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "templates_0003"
down_revision: str | None = "core_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOW = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("templates_versions") as table:
        table.alter_column("dialect", existing_type=sa.String(32), nullable=True)
        table.add_column(sa.Column("display_name", sa.String(255), nullable=True))
    with op.batch_alter_table("templates_control_entries") as table:
        table.add_column(sa.Column("schedule_timezone", sa.String(64), nullable=False, server_default="UTC"))
        table.add_column(sa.Column("catch_up", sa.String(16), nullable=True))
        table.add_column(sa.Column("max_retries", sa.Integer(), nullable=True))
        table.add_column(sa.Column("retry_backoff_seconds", sa.Float(), nullable=True))
    with op.batch_alter_table("templates_runs") as table:
        table.add_column(sa.Column("trigger", sa.String(16), nullable=False, server_default="manual"))
        table.add_column(sa.Column("warnings", sa.JSON(), nullable=True))
    op.create_table(
        "templates_schedules",
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("pipeline_name", sa.String(255), nullable=False),
        sa.Column("instance_id", sa.String(36), nullable=False),
        sa.Column("cron", sa.String(255), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("catch_up", sa.String(16), nullable=True),
        sa.Column("max_retries", sa.Integer(), nullable=True),
        sa.Column("retry_backoff_seconds", sa.Float(), nullable=True),
        sa.Column("slot_at", NOW, nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("retry_at", NOW, nullable=True),
        sa.Column("requested_at", NOW, nullable=True),
        sa.Column("due_at", NOW, nullable=False),
        sa.Column("last_run_id", sa.String(36), nullable=True),
        sa.Column("last_run_at", NOW, nullable=True),
        sa.Column("last_status", sa.String(16), nullable=True),
        sa.Column("updated_at", NOW, nullable=False),
        sa.PrimaryKeyConstraint("project_id", "pipeline_name", name="pk_templates_schedules"),
    )
    op.create_index("ix_templates_schedules_instance_id", "templates_schedules", ["instance_id"])
    op.create_index("ix_templates_schedules_due_at", "templates_schedules", ["due_at"])


def downgrade() -> None:
    op.drop_table("templates_schedules")
    with op.batch_alter_table("templates_runs") as table:
        table.drop_column("warnings")
        table.drop_column("trigger")
    with op.batch_alter_table("templates_control_entries") as table:
        for column in ("retry_backoff_seconds", "max_retries", "catch_up", "schedule_timezone"):
            table.drop_column(column)
    with op.batch_alter_table("templates_versions") as table:
        table.drop_column("display_name")
        table.alter_column("dialect", existing_type=sa.String(32), nullable=False)

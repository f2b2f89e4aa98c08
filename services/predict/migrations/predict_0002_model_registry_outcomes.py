"""predict: model registry, prediction outcomes, resolution of alert episodes

Revision ID: predict_0002
Revises: predict_0001
Create Date: 2026-12-01
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "predict_0002"
down_revision: str | None = "templates_0004"  # after the joined head (one head)
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EPISODE_COLUMNS: tuple[sa.Column[Any], ...] = (
    sa.Column("as_of", sa.DateTime(timezone=True), nullable=True),
    sa.Column("horizon_hours", sa.Float(), nullable=True),
    sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("prevented", sa.Boolean(), nullable=True),
    sa.Column("saving_usd", sa.Float(), nullable=True),
)


def upgrade() -> None:
    op.create_table(
        "predict_model_versions",
        sa.Column("id", sa.Integer(), autoincrement=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("horizons", sa.JSON(), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("training_runs", sa.Integer(), nullable=False),
        sa.Column("stored_runs", sa.Integer(), nullable=False),
        sa.Column("positives", sa.Integer(), nullable=False),
        sa.Column("data_hash", sa.String(64), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("training_seconds", sa.Float(), nullable=True),
        sa.Column("training_cpu_seconds", sa.Float(), nullable=True),
        sa.Column("model_bytes", sa.Integer(), nullable=False),
        sa.Column("model", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_predict_model_versions"),
    )
    op.create_index("ix_predict_model_versions_status", "predict_model_versions", ["status"])
    op.create_table(
        "predict_prediction_outcomes",
        sa.Column("id", sa.Integer(), autoincrement=True),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("pipeline_id", sa.String(255), nullable=False),
        sa.Column("horizon_hours", sa.Float(), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("as_of_hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("probability", sa.Float(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("predicted_failure", sa.Boolean(), nullable=False),
        sa.Column("model_version", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed", sa.Boolean(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_predict_prediction_outcomes"),
        sa.UniqueConstraint(
            "project_id",
            "pipeline_id",
            "horizon_hours",
            "as_of_hour",
            name="uq_predict_prediction_outcomes_project_id",
        ),
    )
    op.create_index(
        "ix_predict_prediction_outcomes_resolved_at", "predict_prediction_outcomes", ["resolved_at"]
    )
    with op.batch_alter_table("predict_alert_episodes") as batch:
        for column in EPISODE_COLUMNS:
            batch.add_column(column.copy())
    op.create_index("ix_predict_alert_episodes_resolved_at", "predict_alert_episodes", ["resolved_at"])


def downgrade() -> None:
    op.drop_index("ix_predict_alert_episodes_resolved_at", "predict_alert_episodes")
    with op.batch_alter_table("predict_alert_episodes") as batch:
        for column in reversed(EPISODE_COLUMNS):
            batch.drop_column(column.name)
    op.drop_index("ix_predict_prediction_outcomes_resolved_at", "predict_prediction_outcomes")
    op.drop_table("predict_prediction_outcomes")
    op.drop_index("ix_predict_model_versions_status", "predict_model_versions")
    op.drop_table("predict_model_versions")

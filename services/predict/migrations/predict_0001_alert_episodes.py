"""predict: alert episodes

Revision ID: predict_0001
Revises:
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "predict_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("predict",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "predict_alert_episodes",
        sa.Column("id", sa.Integer(), autoincrement=True),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("pipeline_id", sa.String(255), nullable=False),
        sa.Column("alert_type", sa.String(32), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("peak_probability", sa.Float(), nullable=False),
        sa.Column("alert", sa.JSON(), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_predict_alert_episodes"),
    )
    op.create_index("ix_predict_alert_episodes_project_id", "predict_alert_episodes", ["project_id"])
    op.create_index(
        "ix_predict_alert_episodes_open",
        "predict_alert_episodes",
        ["project_id", "pipeline_id", "alert_type", "closed_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_predict_alert_episodes_open", "predict_alert_episodes")
    op.drop_index("ix_predict_alert_episodes_project_id", "predict_alert_episodes")
    op.drop_table("predict_alert_episodes")

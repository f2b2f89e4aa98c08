"""templates: state a pipeline carries between runs (high watermark, stream offsets)

Revision ID: templates_0002
Revises: templates_0001
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "templates_0002"
down_revision: str | None = "templates_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "templates_pipeline_state",
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("pipeline_name", sa.String(255), nullable=False),
        sa.Column("high_watermark", sa.String(255), nullable=True),
        sa.Column("stream_offsets", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "pipeline_name", name="pk_templates_pipeline_state"),
    )


def downgrade() -> None:
    op.drop_table("templates_pipeline_state")

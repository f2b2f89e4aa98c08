"""templates: connections a project's maintainers manage (run targets, URL sealed)

Revision ID: templates_0004
Revises: templates_0003
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "templates_0004"
down_revision: str | None = "gateway_0004"  # after the joined head (one head)
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "templates_connections",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("summary", sa.String(1024), nullable=False),
        sa.Column("sealed_url", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_templates_connections"),
        sa.UniqueConstraint("project_id", "name", name="uq_templates_connections_project_id"),
    )
    op.create_index("ix_templates_connections_project_id", "templates_connections", ["project_id"])


def downgrade() -> None:
    op.drop_index("ix_templates_connections_project_id", table_name="templates_connections")
    op.drop_table("templates_connections")

"""gateway: login failures, counted by every replica (login throttling)

Revision ID: gateway_0004
Revises: gateway_0003
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "gateway_0004"
down_revision: str | None = "gateway_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "login_failures",
        sa.Column("id", sa.Integer(), autoincrement=True),
        sa.Column("username", sa.String(128), nullable=False),
        sa.Column("client", sa.String(64), nullable=False),
        sa.Column("failed_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_login_failures"),
    )
    for column in ("username", "client", "failed_at"):
        op.create_index(f"ix_login_failures_{column}", "login_failures", [column])


def downgrade() -> None:
    op.drop_table("login_failures")

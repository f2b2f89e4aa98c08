"""vector_sink: how many of a document's chunks took their vector from the embedding cache

Revision ID: vector_sink_0002
Revises: predict_0002
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "vector_sink_0002"
down_revision: str | None = "predict_0002"  # after the joined head (one head)
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "vector_sink_documents",
        sa.Column("cache_lookups", sa.Integer(), nullable=False, server_default="0"),
    )
    op.add_column(
        "vector_sink_documents",
        sa.Column("cache_hits", sa.Integer(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    with op.batch_alter_table("vector_sink_documents") as batch:
        batch.drop_column("cache_hits")
        batch.drop_column("cache_lookups")

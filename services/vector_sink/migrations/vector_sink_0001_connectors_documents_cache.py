"""vector_sink: connectors, document chunk records, embedding cache

Revision ID: vector_sink_0001
Revises:
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "vector_sink_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("vector_sink",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "vector_sink_connectors",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("store_type", sa.String(32), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("secret_names", sa.JSON(), nullable=False),
        sa.Column("sealed_secrets", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_vector_sink_connectors"),
        sa.UniqueConstraint("project_id", "name", name="uq_vector_sink_connectors_project_id"),
    )
    op.create_index("ix_vector_sink_connectors_project_id", "vector_sink_connectors", ["project_id"])
    op.create_table(
        "vector_sink_documents",
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("connector_id", sa.String(36), nullable=False),
        sa.Column("collection", sa.String(255), nullable=False),
        sa.Column("doc_id", sa.String(255), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("chunk_ids", sa.JSON(), nullable=False),
        sa.Column("pending_ids", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "project_id", "connector_id", "collection", "doc_id", name="pk_vector_sink_documents"
        ),
    )
    op.create_table(
        "vector_sink_embedding_cache",
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("model", "content_hash", name="pk_vector_sink_embedding_cache"),
    )


def downgrade() -> None:
    op.drop_table("vector_sink_embedding_cache")
    op.drop_table("vector_sink_documents")
    op.drop_index("ix_vector_sink_connectors_project_id", "vector_sink_connectors")
    op.drop_table("vector_sink_connectors")

"""features: registry, materialisation watermarks, SQL offline values

Revision ID: features_0001
Revises:
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "features_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("features",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "features_entities",
        sa.Column("id", sa.Integer(), autoincrement=True),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_features_entities"),
        sa.UniqueConstraint("project_id", "name", name="uq_features_entities_project_id"),
    )
    op.create_table(
        "features_views",
        sa.Column("id", sa.Integer(), autoincrement=True),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("entity", sa.String(128), nullable=False),
        sa.Column("source", sa.String(255), nullable=False),
        sa.Column("pipeline_id", sa.String(255), nullable=True),
        sa.Column("ttl_seconds", sa.BigInteger(), nullable=False),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("request_schema", sa.JSON(), nullable=False),
        sa.Column("outputs", sa.JSON(), nullable=False),
        sa.Column("transform", sa.String(255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_features_views"),
        sa.UniqueConstraint("project_id", "name", name="uq_features_views_project_id"),
    )
    op.create_table(
        "features_versions",
        sa.Column("id", sa.Integer(), autoincrement=True),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("feature_type", sa.String(32), nullable=False),
        sa.Column("entity", sa.String(128), nullable=False),
        sa.Column("view", sa.String(128), nullable=False),
        sa.Column("source", sa.String(255), nullable=False),
        sa.Column("pipeline_id", sa.String(255), nullable=True),
        sa.Column("storage_type", sa.String(16), nullable=False),
        sa.Column("ttl_seconds", sa.BigInteger(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("definition_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_features_versions"),
        sa.UniqueConstraint("project_id", "name", "version", name="uq_features_versions_project_id"),
    )
    op.create_table(
        "features_materializations",
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("view", sa.String(128), nullable=False),
        sa.Column("watermark", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "view", name="pk_features_materializations"),
    )
    op.create_table(
        "features_offline_values",
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("feature", sa.String(160), nullable=False),
        sa.Column("entity_id", sa.String(255), nullable=False),
        sa.Column("event_us", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("written_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "project_id", "feature", "entity_id", "event_us", name="pk_features_offline_values"
        ),
    )
    op.create_index(
        "ix_features_offline_values_written", "features_offline_values", ["project_id", "written_us"]
    )


def downgrade() -> None:
    op.drop_index("ix_features_offline_values_written", "features_offline_values")
    op.drop_table("features_offline_values")
    op.drop_table("features_materializations")
    op.drop_table("features_versions")
    op.drop_table("features_views")
    op.drop_table("features_entities")

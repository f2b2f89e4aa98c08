"""drift: partial index on undecided detections

Every batch of observations looks up the open detections of its tables; the table index alone
made that read every detection the table ever had.

Revision ID: drift_0003
Revises: drift_0002
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "drift_0003"
down_revision: str | None = "drift_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN = sa.text("status IN ('pending', 'alerted', 'blocked')")


def upgrade() -> None:
    op.create_index(
        "ix_drift_detections_open",
        "drift_detections",
        ["project_id", "connector_id", "table_name"],
        postgresql_where=OPEN,
        sqlite_where=OPEN,
    )


def downgrade() -> None:
    op.drop_index("ix_drift_detections_open", "drift_detections")

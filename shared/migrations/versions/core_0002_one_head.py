"""core: join the services' migration branches into one head

The specification's `alembic upgrade head` needs a single head. Until now each service kept a
branch of its own; this revision joins them, and every later migration of any service descends
from the one current head (a test refuses a second head).

Revision ID: core_0002
Revises: core_0001, gateway_0001, drift_0003, features_0001, templates_0002, predict_0001, vector_sink_0001
Create Date: 2026-12-03
"""

from collections.abc import Sequence

revision: str = "core_0002"
down_revision: str | Sequence[str] | None = (
    "core_0001",
    "gateway_0001",
    "drift_0003",
    "features_0001",
    "templates_0002",
    "predict_0001",
    "vector_sink_0001",
)
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Nothing to change: the revision only joins the branches."""


def downgrade() -> None:
    """Nothing to change: the revision only joins the branches."""

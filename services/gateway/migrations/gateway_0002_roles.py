"""gateway: roles within a project (viewer, member, maintainer, owner)

The bootstrap administrator's membership was stored with role "admin": it becomes "owner" (an
administrator acts as owner everywhere anyway); any other value that is not a role becomes "member",
what every membership meant before roles existed.

Revision ID: gateway_0002
Revises: templates_0004 (the one head when roles arrived; see core_0002)
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "gateway_0002"
down_revision: str | None = "ops_0001"  # after every service branch joined (one head)
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROLES = ("viewer", "member", "maintainer", "owner")


def upgrade() -> None:
    memberships = sa.table("memberships", sa.column("role", sa.String(32)))
    op.execute(memberships.update().where(memberships.c.role == "admin").values(role="owner"))
    op.execute(memberships.update().where(memberships.c.role.not_in(ROLES)).values(role="member"))


def downgrade() -> None:
    memberships = sa.table("memberships", sa.column("role", sa.String(32)))
    op.execute(memberships.update().where(memberships.c.role == "owner").values(role="admin"))

"""Tenancy: users belong to projects; every resource in the platform is scoped by `project_id`."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Enum, ForeignKey, String, false
from sqlalchemy.orm import Mapped, mapped_column

from aietl.services.gateway.roles import Role
from aietl.shared.db import Base
from aietl.shared.events.base import utc_now


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(128), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(default=False)
    # A disabled user cannot log in, and their tokens are refused.
    disabled: Mapped[bool] = mapped_column(default=False, server_default=false())
    # In every token issued; raised when the password changes or the user is disabled, which
    # revokes every token issued before.
    token_version: Mapped[int] = mapped_column(default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class Membership(Base):
    __tablename__ = "memberships"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    # Stored as its name in a VARCHAR(32); a value that is not a Role is refused before it is written.
    role: Mapped[Role] = mapped_column(
        Enum(
            Role,
            native_enum=False,
            length=32,
            validate_strings=True,
            values_callable=lambda roles: [r.value for r in roles],
        ),
        default=Role.member,
    )


class LoginFailure(Base):
    """A failed (or still running) login: what login throttling counts (`aietl.services.gateway.throttle`)."""

    __tablename__ = "login_failures"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(128), index=True)
    client: Mapped[str] = mapped_column(String(64), index=True)
    failed_at: Mapped[float] = mapped_column(index=True)  # epoch seconds, comparable on every backend

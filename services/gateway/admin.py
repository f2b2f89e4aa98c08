"""Projects and users (administrators), members and their roles (a project's owners and
administrators), and the bootstrap administrator."""

from __future__ import annotations

import secrets
import sys
from typing import Annotated

from fastapi import APIRouter, status
from pydantic import BaseModel, Field, StringConstraints, model_validator
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from aietl.services.gateway.deps import (
    ROLE_TOO_LOW,
    AdminDep,
    AuthenticatorDep,
    PrincipalDep,
    SessionDep,
    project_not_found,
    require_role,
)
from aietl.services.gateway.roles import Role
from aietl.services.gateway.security import Password, Principal, hash_password, hashed_password
from aietl.services.gateway.tables import Membership, Project, User
from aietl.services.runtime import Runtime
from aietl.shared.errors import Conflict, Invalid, NotFound
from aietl.shared.events.base import ProjectId

router = APIRouter(tags=["admin"])


class ProjectIn(BaseModel):
    id: ProjectId
    name: Annotated[str, Field(min_length=1, max_length=255)]


class ProjectOut(BaseModel):
    id: str
    name: str


Username = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.@-]+$")]


class UserIn(BaseModel):
    username: Username
    password: Password
    projects: list[ProjectId] = Field(default_factory=list, description="projects joined as member")
    roles: dict[ProjectId, Role] = Field(default_factory=dict, description="projects joined with a role")
    is_admin: bool = False

    @model_validator(mode="after")
    def _in_some_project(self) -> UserIn:
        if not self.projects and not self.roles:
            raise ValueError("give at least one project (`projects` or `roles`)")
        return self

    def memberships(self) -> dict[str, Role]:
        """Each project once: listed in `projects` = member, unless `roles` names its role."""
        return {**dict.fromkeys(self.projects, Role.member), **self.roles}


class UserPatch(BaseModel):
    """What an administrator may change of a user; a new password or disabling revokes the user's tokens."""

    password: Password | None = None
    is_admin: bool | None = None
    disabled: bool | None = None


class UserOut(BaseModel):
    id: int
    username: str
    is_admin: bool
    disabled: bool
    projects: list[str]
    roles: dict[str, Role]


class MemberIn(BaseModel):
    role: Role


class MemberOut(BaseModel):
    username: str
    role: Role


@router.post(
    "/projects",
    response_model=ProjectOut,
    status_code=status.HTTP_201_CREATED,
    responses={409: {"description": "The project exists"}},
)
async def create_project(body: ProjectIn, _admin: AdminDep, session: SessionDep) -> ProjectOut:
    if await session.get(Project, body.id) is not None:
        raise Conflict(f"project {body.id!r} already exists")
    session.add(Project(id=body.id, name=body.name))
    await session.commit()
    return ProjectOut(id=body.id, name=body.name)


@router.get("/projects", response_model=list[ProjectOut])
async def list_projects(_admin: AdminDep, session: SessionDep) -> list[ProjectOut]:
    projects = await session.scalars(select(Project).order_by(Project.id))
    return [ProjectOut(id=p.id, name=p.name) for p in projects]


async def _user_out(session: AsyncSession, user: User) -> UserOut:
    memberships = await session.execute(
        select(Membership.project_id, Membership.role)
        .where(Membership.user_id == user.id)
        .order_by(Membership.project_id)
    )
    roles = dict(memberships.tuples().all())
    return UserOut(
        id=user.id,
        username=user.username,
        is_admin=user.is_admin,
        disabled=user.disabled,
        projects=list(roles),
        roles=roles,
    )


@router.post(
    "/users",
    response_model=UserOut,
    status_code=status.HTTP_201_CREATED,
    responses={409: {"description": "The user exists"}},
)
async def create_user(body: UserIn, _admin: AdminDep, session: SessionDep) -> UserOut:
    if await session.scalar(select(User.id).where(User.username == body.username)) is not None:
        raise Conflict(f"user {body.username!r} already exists")
    roles = body.memberships()
    missing = sorted([p for p in roles if await session.get(Project, p) is None])
    if missing:
        raise Invalid(f"unknown projects: {missing}", at="/body")
    user = User(
        username=body.username, password_hash=await hashed_password(body.password), is_admin=body.is_admin
    )
    session.add(user)
    await session.flush()
    session.add_all(Membership(user_id=user.id, project_id=p, role=role) for p, role in roles.items())
    await session.commit()
    return await _user_out(session, user)


@router.get("/users", response_model=list[UserOut])
async def list_users(_admin: AdminDep, session: SessionDep) -> list[UserOut]:
    users = await session.scalars(select(User).order_by(User.username))
    return [await _user_out(session, user) for user in users]


async def _user_named(session: AsyncSession, username: str) -> User:
    user = await session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"user {username!r} not found")
    return user


def _not_yourself(admin: Principal, user: User, what: str) -> None:
    """An administrator does not lock themselves out: another administrator must do it."""
    if user.id == admin.user_id:
        raise Conflict(f"you cannot {what} yourself")


@router.patch(
    "/users/{username}",
    response_model=UserOut,
    responses={409: {"description": "Administrators do not disable or demote themselves"}},
)
async def update_user(
    username: Username, body: UserPatch, admin: AdminDep, session: SessionDep, authenticator: AuthenticatorDep
) -> UserOut:
    """Set a new password, the administrator flag or disable a user. A new password or disabling
    revokes every token issued to the user before; every change applies to their next request."""
    user = await _user_named(session, username)
    if body.disabled:
        _not_yourself(admin, user, "disable")
    if body.is_admin is False:
        _not_yourself(admin, user, "take the administrator role from")
    if body.password is not None:
        user.password_hash = await hashed_password(body.password)
    if body.is_admin is not None:
        user.is_admin = body.is_admin
    if body.disabled is not None:
        user.disabled = body.disabled
    if body.password is not None or body.disabled:
        user.token_version += 1
    await session.commit()
    authenticator.forget(user.id)
    return await _user_out(session, user)


@router.delete(
    "/users/{username}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={409: {"description": "Administrators do not delete themselves"}},
)
async def delete_user(
    username: Username, admin: AdminDep, session: SessionDep, authenticator: AuthenticatorDep
) -> None:
    """Delete the user and their memberships; their tokens stop working."""
    user = await _user_named(session, username)
    _not_yourself(admin, user, "delete")
    await session.delete(user)
    await session.commit()
    authenticator.forget(user.id)


# --- members of a project: its owners (and administrators) manage them -----------------------------


async def _project_as(session: AsyncSession, principal: PrincipalDep, project_id: str, minimum: Role) -> str:
    """The project, once the caller holds `minimum` in it (404 when it does not exist, for
    administrators too, who act as owner in every project)."""
    require_role(principal, project_id, minimum)
    if await session.get(Project, project_id) is None:
        raise project_not_found(project_id)
    return project_id


async def _membership(
    session: AsyncSession, principal: Principal, project_id: str, username: str
) -> tuple[User, Membership | None]:
    """The user and their membership of the project, once the caller may manage its members."""
    await _project_as(session, principal, project_id, Role.owner)
    user = await _user_named(session, username)
    return user, await session.get(Membership, (user.id, project_id))


@router.get(
    "/projects/{project_id}/members",
    response_model=list[MemberOut],
    responses=ROLE_TOO_LOW,
)
async def list_members(
    project_id: ProjectId, principal: PrincipalDep, session: SessionDep
) -> list[MemberOut]:
    """The project's members and their roles (any member may see them)."""
    await _project_as(session, principal, project_id, Role.viewer)
    rows = await session.execute(
        select(User.username, Membership.role)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.project_id == project_id)
        .order_by(User.username)
    )
    return [MemberOut(username=username, role=role) for username, role in rows.tuples()]


@router.put(
    "/projects/{project_id}/members/{username}",
    response_model=MemberOut,
    responses=ROLE_TOO_LOW,
)
async def set_member_role(
    project_id: ProjectId,
    username: Username,
    body: MemberIn,
    principal: PrincipalDep,
    session: SessionDep,
    authenticator: AuthenticatorDep,
) -> MemberOut:
    """Add the user to the project with `role`, or change their role (owners and administrators)."""
    user, membership = await _membership(session, principal, project_id, username)
    if membership is None:
        session.add(Membership(user_id=user.id, project_id=project_id, role=body.role))
    else:
        membership.role = body.role
    await session.commit()
    authenticator.forget(user.id)
    return MemberOut(username=username, role=body.role)


@router.delete(
    "/projects/{project_id}/members/{username}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=ROLE_TOO_LOW,
)
async def remove_member(
    project_id: ProjectId,
    username: Username,
    principal: PrincipalDep,
    session: SessionDep,
    authenticator: AuthenticatorDep,
) -> None:
    """Take the user out of the project (owners and administrators)."""
    user, membership = await _membership(session, principal, project_id, username)
    if membership is None:
        raise NotFound(f"user {username!r} is not in project {project_id!r}")
    await session.delete(membership)
    await session.commit()
    authenticator.forget(user.id)


BOOTSTRAP_ATTEMPTS = 3


async def ensure_bootstrap_admin(runtime: Runtime) -> None:
    """Create the default project and the administrator once; an unset password is generated and
    printed once to the console (never to the log). Gateway replicas starting together race to
    create them: one wins, the others hit the unique keys and look again (and find them)."""
    for attempt in range(1, BOOTSTRAP_ATTEMPTS + 1):
        try:
            generated = await _create_missing(runtime)
        except IntegrityError:
            if attempt == BOOTSTRAP_ATTEMPTS:
                raise
            continue
        if generated is not None:  # shown only once it is stored
            print(
                f"\n  AI-ETL administrator created: username={runtime.settings.admin_username} "
                f"password={generated}\n  (shown once; set AIETL_ADMIN_PASSWORD to choose it)\n",
                file=sys.stderr,
                flush=True,
            )
        return


async def _create_missing(runtime: Runtime) -> str | None:
    """One transaction; returns the password it generated, if it generated one."""
    settings = runtime.settings
    async with runtime.database.transaction() as session:
        await _ensure_project(session, settings.default_project)
        if await session.scalar(select(User.id).where(User.username == settings.admin_username)) is not None:
            return None
        generated = None
        if settings.admin_password is not None:
            password = settings.admin_password.get_secret_value()
        elif settings.environment == "production":
            raise RuntimeError("AIETL_ADMIN_PASSWORD must be set in production")
        else:
            password = generated = secrets.token_urlsafe(12)
        user = User(username=settings.admin_username, password_hash=hash_password(password), is_admin=True)
        session.add(user)
        await session.flush()
        session.add(Membership(user_id=user.id, project_id=settings.default_project, role=Role.owner))
    return generated


async def _ensure_project(session: AsyncSession, project_id: str) -> None:
    if await session.get(Project, project_id) is None:
        session.add(Project(id=project_id, name=project_id))
        await session.flush()

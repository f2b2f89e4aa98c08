"""Projects and users (administrators), members and their roles (a project's owners and
administrators), and the bootstrap administrator."""

from __future__ import annotations

import secrets
import sys
from typing import Annotated

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, Field, SecretStr, StringConstraints, model_validator
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.gateway.deps import AdminDep, PrincipalDep, SessionDep, project_not_found, require_role
from services.gateway.roles import Role
from services.gateway.security import hash_password
from services.gateway.tables import Membership, Project, User
from services.runtime import Runtime
from shared.events.base import ProjectId

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
    password: Annotated[SecretStr, Field(min_length=8, max_length=1024)]
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


class UserOut(BaseModel):
    id: int
    username: str
    is_admin: bool
    projects: list[str]
    roles: dict[str, Role]


class MemberIn(BaseModel):
    role: Role


class MemberOut(BaseModel):
    username: str
    role: Role


@router.post("/projects", response_model=ProjectOut, status_code=status.HTTP_201_CREATED, responses={409: {}})
async def create_project(body: ProjectIn, _admin: AdminDep, session: SessionDep) -> ProjectOut:
    if await session.get(Project, body.id) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=f"project {body.id!r} already exists")
    session.add(Project(id=body.id, name=body.name))
    await session.commit()
    return ProjectOut(id=body.id, name=body.name)


@router.get("/projects", response_model=list[ProjectOut])
async def list_projects(_admin: AdminDep, session: SessionDep) -> list[ProjectOut]:
    projects = await session.scalars(select(Project).order_by(Project.id))
    return [ProjectOut(id=p.id, name=p.name) for p in projects]


@router.post(
    "/users", response_model=UserOut, status_code=status.HTTP_201_CREATED, responses={409: {}, 422: {}}
)
async def create_user(body: UserIn, _admin: AdminDep, session: SessionDep) -> UserOut:
    if await session.scalar(select(User.id).where(User.username == body.username)) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=f"user {body.username!r} already exists")
    roles = dict(sorted(body.memberships().items()))
    missing = [p for p in roles if await session.get(Project, p) is None]
    if missing:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=f"unknown projects: {missing}")
    user = User(
        username=body.username,
        password_hash=hash_password(body.password.get_secret_value()),
        is_admin=body.is_admin,
    )
    session.add(user)
    await session.flush()
    session.add_all(Membership(user_id=user.id, project_id=p, role=role) for p, role in roles.items())
    await session.commit()
    return UserOut(
        id=user.id, username=user.username, is_admin=user.is_admin, projects=list(roles), roles=roles
    )


# --- members of a project: its owners (and administrators) manage them -----------------------------


async def _project_as(session: AsyncSession, principal: PrincipalDep, project_id: str, minimum: Role) -> str:
    """The project, once the caller holds `minimum` in it (404 when it does not exist, for
    administrators too, who act as owner in every project)."""
    require_role(principal, project_id, minimum)
    if await session.get(Project, project_id) is None:
        raise project_not_found(project_id)
    return project_id


async def _user_named(session: AsyncSession, username: str) -> User:
    user = await session.scalar(select(User).where(User.username == username))
    if user is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"user {username!r} not found")
    return user


@router.get("/projects/{project_id}/members", response_model=list[MemberOut])
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


@router.put("/projects/{project_id}/members/{username}", response_model=MemberOut)
async def set_member_role(
    project_id: ProjectId, username: Username, body: MemberIn, principal: PrincipalDep, session: SessionDep
) -> MemberOut:
    """Add the user to the project with `role`, or change their role (owners and administrators)."""
    await _project_as(session, principal, project_id, Role.owner)
    user = await _user_named(session, username)
    membership = await session.get(Membership, (user.id, project_id))
    if membership is None:
        session.add(Membership(user_id=user.id, project_id=project_id, role=body.role))
    else:
        membership.role = body.role
    await session.commit()
    return MemberOut(username=username, role=body.role)


@router.delete("/projects/{project_id}/members/{username}", status_code=status.HTTP_204_NO_CONTENT)
async def remove_member(
    project_id: ProjectId, username: Username, principal: PrincipalDep, session: SessionDep
) -> None:
    """Take the user out of the project (owners and administrators)."""
    await _project_as(session, principal, project_id, Role.owner)
    user = await _user_named(session, username)
    membership = await session.get(Membership, (user.id, project_id))
    if membership is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, detail=f"user {username!r} is not in project {project_id!r}"
        )
    await session.delete(membership)
    await session.commit()


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

"""Projects and their members (owner / member / viewer); a project always keeps at least one owner."""

from __future__ import annotations

import re

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from tunery.server.db.models import Dataset, Job, JobStatus, Membership, Project, Role, User
from tunery.server.errors import ConflictError, NotFoundError
from tunery.server.services.users import find_user
from tunery.server.storage import Storage


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:50]
    return slug or "project"


def _free_slug(session: Session, wanted: str) -> str:
    taken = set(session.scalars(select(Project.slug).where(Project.slug.like(f"{wanted}%"))))
    slug, number = wanted, 1
    while slug in taken:
        number += 1
        slug = f"{wanted}-{number}"
    return slug


def create_project(session: Session, owner: User, name: str, slug: str | None = None) -> Project:
    """Adds a project owned by ``owner`` (not committed). A given slug must be free; a derived one is made so."""
    if slug is not None and session.scalar(select(Project.id).where(Project.slug == slug)) is not None:
        raise ConflictError(f"the slug '{slug}' is taken")
    project = Project(name=name, slug=slug or _free_slug(session, slugify(name)))
    project.memberships.append(Membership(user_id=owner.id, role=Role.OWNER))
    session.add(project)
    session.flush()
    return project


def user_projects(session: Session, user_id: str) -> list[tuple[Project, Role]]:
    rows = session.execute(
        select(Project, Membership.role)
        .join(Membership, Membership.project_id == Project.id)
        .where(Membership.user_id == user_id)
        .order_by(Project.created_at)
    )
    return [(project, role) for project, role in rows]


def members(session: Session, project_id: str) -> list[tuple[Membership, User]]:
    rows = session.execute(
        select(Membership, User)
        .join(User, User.id == Membership.user_id)
        .where(Membership.project_id == project_id)
        .order_by(Membership.created_at)
    )
    return [(membership, user) for membership, user in rows]


def add_member(session: Session, project: Project, email: str, role: Role) -> tuple[Membership, User]:
    user = find_user(session, email)
    if user is None:
        raise NotFoundError(f"no user with email {email}")
    if _membership(session, project.id, user.id) is not None:
        raise ConflictError(f"{email} is already a member of this project")
    membership = Membership(project_id=project.id, user_id=user.id, role=role)
    session.add(membership)
    session.flush()
    return membership, user


def _membership(session: Session, project_id: str, user_id: str) -> Membership | None:
    return session.scalar(select(Membership).where(Membership.project_id == project_id, Membership.user_id == user_id))


def _owners(session: Session, project_id: str) -> int:
    return (
        session.scalar(select(func.count()).where(Membership.project_id == project_id, Membership.role == Role.OWNER))
        or 0
    )


def change_role(session: Session, project: Project, user_id: str, role: Role) -> Membership:
    membership = _membership(session, project.id, user_id)
    if membership is None:
        raise NotFoundError("member not found")
    if membership.role == Role.OWNER and role != Role.OWNER and _owners(session, project.id) <= 1:
        raise ConflictError("the last owner cannot be demoted; make someone else owner first")
    membership.role = role
    return membership


def remove_member(session: Session, project: Project, user_id: str) -> None:
    membership = _membership(session, project.id, user_id)
    if membership is None:
        raise NotFoundError("member not found")
    if membership.role == Role.OWNER and _owners(session, project.id) <= 1:
        raise ConflictError("the last owner cannot leave; make someone else owner or delete the project")
    session.delete(membership)


def delete_project(session: Session, storage: Storage, project: Project) -> None:
    """Deletes the project with its rows and files (commits); refused while one of its jobs runs."""
    running = session.scalar(
        select(func.count()).where(Job.project_id == project.id, Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]))
    )
    if running:
        raise ConflictError(f"{running} job(s) of this project are queued or running; cancel them first")
    dataset_ids = list(session.scalars(select(Dataset.id).where(Dataset.project_id == project.id)))
    job_ids = list(session.scalars(select(Job.id).where(Job.project_id == project.id)))
    session.execute(delete(Job).where(Job.project_id == project.id))
    session.execute(delete(Project).where(Project.id == project.id))
    session.commit()
    for dataset_id in dataset_ids:
        storage.remove(storage.path("datasets", dataset_id))
    for job_id in job_ids:
        storage.remove(storage.path("jobs", job_id))

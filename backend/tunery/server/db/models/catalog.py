"""Base models and datasets (with immutable, content-hashed versions)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tunery.server.db.base import Base, CreatedMixin, IdMixin


class RegisteredModel(IdMixin, CreatedMixin, Base):
    """A base model: a name for a local path or hub id, with what we know about it.

    ``project_id`` None: registered by an admin for every project (read-only to non-admins).
    """

    __tablename__ = "base_models"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    project_id: Mapped[str | None] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    path_or_hub_id: Mapped[str] = mapped_column(Text)
    architecture: Mapped[str | None] = mapped_column(String(100))
    num_parameters: Mapped[int | None] = mapped_column(BigInteger)
    template: Mapped[str | None] = mapped_column(String(100))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Dataset(IdMixin, CreatedMixin, Base):
    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    #: the number the next upload gets; numbers are never reused, even after a version is deleted
    next_version: Mapped[int] = mapped_column(Integer, default=1)

    versions: Mapped[list[DatasetVersion]] = relationship(
        back_populates="dataset", cascade="all, delete-orphan", order_by="DatasetVersion.version"
    )


class DatasetVersion(IdMixin, CreatedMixin, Base):
    """One immutable version: its files under the storage root, its dataset_info entry, its report."""

    __tablename__ = "dataset_versions"
    __table_args__ = (UniqueConstraint("dataset_id", "version"),)

    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    storage_path: Mapped[str] = mapped_column(Text)  # relative to the storage root
    info: Mapped[dict[str, Any]] = mapped_column(default=dict)  # the dataset_info.json entry
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_total: Mapped[int | None] = mapped_column(Integer)
    rows_valid: Mapped[int | None] = mapped_column(Integer)
    stage: Mapped[str] = mapped_column(String(8), default="sft")  # the stage rows are validated for
    # pending | valid | invalid; a hub import: importing, then valid | invalid, or failed
    status: Mapped[str] = mapped_column(String(16), default="pending")
    report: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # a hub import: where the rows came from (hub, repo, subset, split, revision) and how far it got
    source: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    progress: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=text("'{}'"))

    dataset: Mapped[Dataset] = relationship(back_populates="versions")

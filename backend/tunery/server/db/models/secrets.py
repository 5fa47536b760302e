"""Project secrets (hub tokens): values encrypted at rest, read only by workers for the jobs that name them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tunery.server.db.base import Base, CreatedMixin, IdMixin, utcnow


class ProjectSecret(IdMixin, CreatedMixin, Base):
    __tablename__ = "project_secrets"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    #: a Fernet token (services/secrets.py): never the value itself
    value_encrypted: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

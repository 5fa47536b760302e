"""Domain errors that services raise and the API turns into HTTP answers (``{"detail": ...}``)."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    status_code = 400

    def __init__(self, detail: str, extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra or {}


class NotFoundError(ServiceError):
    """Missing, or in a project the caller is not a member of (both look the same: 404)."""

    status_code = 404


class ForbiddenError(ServiceError):
    """A member whose role does not allow this."""

    status_code = 403


class ConflictError(ServiceError):
    status_code = 409


class InvalidError(ServiceError):
    status_code = 422


class TooLargeError(ServiceError):
    status_code = 413

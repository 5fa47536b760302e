"""Serving tests reuse the platform's fixtures (PostgreSQL database, settings, factory)."""

from __future__ import annotations

from tests.server.conftest import database, factory, pg_url, settings

__all__ = ["database", "factory", "pg_url", "settings"]

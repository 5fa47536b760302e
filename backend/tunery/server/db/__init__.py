"""Database: SQLAlchemy 2 models (the source of truth for every job) and sessions."""

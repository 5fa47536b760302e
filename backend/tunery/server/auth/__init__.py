"""Authentication (passwords, login tokens, API keys) and project access by role."""

"""Chat templates: one registry of model families' conversation formats."""

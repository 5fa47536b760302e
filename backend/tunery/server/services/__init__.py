"""Domain code the API and the worker tasks call (no HTTP here)."""

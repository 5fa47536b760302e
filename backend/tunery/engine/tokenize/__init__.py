"""Tokenization: label masking, cutoff, packing, and the content-keyed tokenized cache.

``build_training_data(spec, tokenizer, template, cache_dir)`` is what the trainer calls (token rows for
pt/sft, the ``columns`` rows of the preference and RL stages);
``preview(spec, n, tokenizer, template)`` shows how examples are tokenized.
"""

from tunery.engine.tokenize.collate import PackedCollator, PaddingCollator
from tunery.engine.tokenize.columns import ColumnDataset, ColumnRows
from tunery.engine.tokenize.pipeline import TrainingData, build_training_data, tokenize_loaded
from tunery.engine.tokenize.preview import preview, preview_loaded
from tunery.engine.tokenize.rows import IGNORE_INDEX, TokenizedDataset, TokenRows
from tunery.engine.tokenize.stats import TokenStats
from tunery.engine.tokenize.supervised import EncodeOptions, infer_seqlen

__all__ = [
    "IGNORE_INDEX",
    "ColumnDataset",
    "ColumnRows",
    "EncodeOptions",
    "PackedCollator",
    "PaddingCollator",
    "TokenRows",
    "TokenStats",
    "TokenizedDataset",
    "TrainingData",
    "build_training_data",
    "infer_seqlen",
    "preview",
    "preview_loaded",
    "tokenize_loaded",
]

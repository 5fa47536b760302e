"""Content fingerprint of loaded data: every input file's bytes, the dataset entries and the options
that shape the examples. The tokenized cache keys on it."""

from __future__ import annotations

import json
from typing import Any

import xxhash

from tunery.engine.data.formats.base import PLACEHOLDERS
from tunery.engine.data.sources import Source
from tunery.spec.data import DataSection

#: Bump when the conversion of rows into examples changes, so old caches are not reused.
FORMAT_VERSION = 1


def shaping_options(data: DataSection, stage: str, seed: int, sources: list[Source]) -> dict[str, Any]:
    """The options that change which examples come out, in which order."""
    options: dict[str, Any] = {
        "version": FORMAT_VERSION,
        "stage": stage,
        "max_samples": data.max_samples,
        "mix_strategy": data.mix_strategy,
        "interleave_probs": data.interleave_probs,
        "val_size": data.val_size,
        "streaming": data.streaming,
        "eval_on_each_dataset": data.eval_on_each_dataset,
        "media_dir": data.media_dir or data.dataset_dir,
        "placeholders": PLACEHOLDERS,
    }
    random = data.val_size > 0 or data.interleave_probs is not None or data.streaming
    if random or any(source.attr.num_samples for source in sources):
        options["seed"] = seed
    if data.streaming:
        options["buffer_size"] = data.buffer_size
    return options


def fingerprint(data: DataSection, stage: str, seed: int, train: list[Source], evaluation: list[Source]) -> str:
    digest = xxhash.xxh3_128()
    options = shaping_options(data, stage, seed, train + evaluation)
    digest.update(json.dumps(options, sort_keys=True).encode())
    for group, sources in (("train", train), ("eval", evaluation)):
        for source in sources:
            attr = source.attr
            entry = {
                "group": group,
                "name": attr.name,
                "from": attr.load_from,
                "source": attr.dataset_name,
                "entry": attr.entry,
            }
            digest.update(json.dumps(entry, sort_keys=True, default=str).encode())
            source.update_digest(digest)
    return digest.hexdigest()

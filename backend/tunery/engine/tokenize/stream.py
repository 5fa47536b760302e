"""Streaming: examples are tokenized lazily, chunk by chunk, as the trainer iterates."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from torch.utils.data import IterableDataset, get_worker_info

from tunery.engine.data.types import Example
from tunery.engine.templates.base import ChatTemplate
from tunery.engine.tokenize.encode import Recipe, chunks, encode_sequences
from tunery.engine.tokenize.packing import pack_rows
from tunery.engine.tokenize.pretrain import document_ids, pack_blocks
from tunery.engine.tokenize.rows import TokenRows


class StreamingTokenizedDataset(IterableDataset[dict[str, list[int]]]):
    """Yields the same dicts as :class:`TokenizedDataset`; packing works within each chunk of
    ``chunk_size`` examples (pretraining blocks continue across chunks). ``examples`` must be
    iterable more than once to train several epochs."""

    def __init__(
        self,
        examples: Iterable[Example],
        tokenizer: Any,
        template: ChatTemplate | None,
        recipe: Recipe,
        chunk_size: int = 1000,
    ) -> None:
        self.examples = examples
        self.tokenizer = tokenizer
        self.template = template
        self.recipe = recipe
        self.chunk_size = chunk_size

    def _row_sets(self, share: int, shares: int) -> Iterator[TokenRows]:
        """Rows of the chunks numbered ``share`` modulo ``shares`` (one share per dataloader worker)."""
        cutoff = self.recipe.options.cutoff_len
        leftover: list[int] = []
        for number, chunk in enumerate(chunks(self.examples, self.chunk_size)):
            mine = number % shares == share
            if self.recipe.stage == "pt" and self.recipe.packing:  # blocks continue across chunks
                docs = document_ids(chunk, self.tokenizer, self.recipe.template_name)
                rows, leftover = pack_blocks(docs, self.tokenizer, cutoff, leftover)
            elif not mine:
                continue
            else:
                rows, _, _ = encode_sequences(chunk, self.tokenizer, self.template, self.recipe)
                if self.recipe.pack_mode != "none":
                    rows, _ = pack_rows(rows, cutoff, neat=self.recipe.pack_mode == "neat")
            if mine:
                yield rows

    def __iter__(self) -> Iterator[dict[str, list[int]]]:
        worker = get_worker_info()
        share, shares = (worker.id, worker.num_workers) if worker is not None else (0, 1)
        for rows in self._row_sets(share, shares):
            for index in range(len(rows)):
                yield rows.row(index)

"""Streaming: examples are tokenized lazily, chunk by chunk, as the trainer iterates."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import partial
from typing import Any

from torch.utils.data import IterableDataset, get_worker_info

from tunery.engine.data.types import Example
from tunery.engine.templates.base import ChatTemplate
from tunery.engine.tokenize.encode import Recipe, chunks, encode_sequences
from tunery.engine.tokenize.packing import pack_rows
from tunery.engine.tokenize.parallel import map_chunks
from tunery.engine.tokenize.pretrain import document_ids, pack_blocks
from tunery.engine.tokenize.rows import TokenRows


class StreamingTokenizedDataset(IterableDataset[dict[str, list[int]]]):
    """Yields the same dicts as :class:`TokenizedDataset`; packing works within each chunk of
    ``chunk_size`` examples (pretraining blocks continue across chunks). ``examples`` must be
    iterable more than once to train several epochs. ``workers`` > 1 (``preprocessing_num_workers``)
    tokenizes the chunks in that many processes, ahead of the trainer; inside data loader workers
    (``dataloader_num_workers``), which share the chunks out among themselves, each tokenizes its own."""

    def __init__(
        self,
        examples: Iterable[Example],
        tokenizer: Any,
        template: ChatTemplate | None,
        recipe: Recipe,
        chunk_size: int = 1000,
        workers: int = 1,
    ) -> None:
        self.examples = examples
        self.tokenizer = tokenizer
        self.template = template
        self.recipe = recipe
        self.chunk_size = chunk_size
        self.workers = workers

    def _encode(self, chunk: list[Example]) -> TokenRows:
        rows, _, _ = encode_sequences(chunk, self.tokenizer, self.template, self.recipe)
        if self.recipe.pack_mode != "none":
            rows, _ = pack_rows(rows, self.recipe.options.cutoff_len, neat=self.recipe.pack_mode == "neat")
        return rows

    def _row_sets(self, share: int, shares: int) -> Iterator[TokenRows]:
        """Rows of the chunks numbered ``share`` modulo ``shares`` (one share per dataloader worker)."""
        workers = self.workers if shares == 1 else 1
        if self.recipe.stage == "pt" and self.recipe.packing:  # blocks continue across chunks
            leftover: list[int] = []
            encode_docs = partial(document_ids, tokenizer=self.tokenizer, template_name=self.recipe.template_name)
            all_docs = map_chunks(encode_docs, chunks(self.examples, self.chunk_size), workers)
            for number, docs in enumerate(all_docs):
                rows, leftover = pack_blocks(docs, self.tokenizer, self.recipe.options.cutoff_len, leftover)
                if number % shares == share:
                    yield rows
            return
        mine = (
            chunk for number, chunk in enumerate(chunks(self.examples, self.chunk_size)) if number % shares == share
        )
        yield from map_chunks(self._encode, mine, workers)

    def __iter__(self) -> Iterator[dict[str, list[int]]]:
        worker = get_worker_info()
        share, shares = (worker.id, worker.num_workers) if worker is not None else (0, 1)
        for rows in self._row_sets(share, shares):
            for index in range(len(rows)):
                yield rows.row(index)

"""LLaMA-Factory's ``tokenized_path`` layout: a ``datasets`` DatasetDict saved with ``save_to_disk``.

LLaMA-Factory 0.9.5 (``data/loader.py`` ``get_dataset``) writes the splits ``train`` and ``validation`` (or
``validation_<dataset>`` with ``eval_on_each_dataset``) with the columns of its processors:

- pt: ``input_ids``, ``attention_mask`` (its collator trains on ``input_ids``, no ``labels`` column);
- sft: ``input_ids``, ``attention_mask``, ``labels``, ``images``/``videos``/``audios`` (null for text), packed
  rows also ``position_ids`` (``attention_mask`` holds each token's sequence number with neat packing);
- rm/dpo: ``chosen_``/``rejected_`` + ``input_ids``/``attention_mask``/``labels``;
- kto: ``input_ids``, ``attention_mask``, ``labels``, ``kl_*`` (mismatched pairs), ``kto_tags``;
- ppo: ``input_ids`` (the prompt), ``labels`` (the answer's ids): no text, which Tunery's prompt rows need.

Reading takes the list columns' offsets and values straight from the memory-mapped Arrow files (one copy
into flat arrays when a column has several chunks; spilled to an unlinked temporary file when large), so no
Python list per row is ever built. Writing builds the Arrow list columns from the flat arrays, batch by batch.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from tunery.engine.tokenize.cache import CachedSplit
from tunery.engine.tokenize.columns import ColumnRows, Ragged, RowKind
from tunery.engine.tokenize.errors import TokenizeError
from tunery.engine.tokenize.rows import IGNORE_INDEX, TokenRows
from tunery.engine.tokenize.stats import compute_stats

if TYPE_CHECKING:
    import pyarrow as pa  # type: ignore[import-untyped]

MEDIA = ("images", "videos", "audios")
#: Flat arrays larger than this many values are written to an unlinked temporary file (memory-mapped).
SPILL_VALUES = 1 << 28
#: Rows and tokens per Arrow record batch written (int32 list offsets stay in range).
BATCH_ROWS = 1 << 16
BATCH_TOKENS = 1 << 30


def lf_split_name(name: str) -> str:
    """LLaMA-Factory's split name of a Tunery split (``eval`` -> ``validation``, ``eval/x`` -> ``validation_x``)."""
    if name == "eval":
        return "validation"
    if name.startswith("eval/"):
        return "validation_" + name.removeprefix("eval/")
    return name


def tunery_split_name(name: str) -> str:
    if name == "validation":
        return "eval"
    if name.startswith("validation_"):
        return "eval/" + name.removeprefix("validation_")
    return name


def is_lf_folder(folder: Path) -> bool:
    """Whether ``folder`` holds a ``save_to_disk`` output (a DatasetDict, or one Dataset)."""
    return (folder / "dataset_dict.json").is_file() or (folder / "state.json").is_file()


# ---- reading -----------------------------------------------------------------------------------------------


def _empty(count: int, dtype: type[np.generic]) -> npt.NDArray[Any]:
    if count <= SPILL_VALUES:
        return np.empty(count, dtype=dtype)
    with tempfile.TemporaryFile(prefix="tunery-lf-") as spill:  # unlinked; the mapping outlives the file
        return np.memmap(spill, dtype=dtype, mode="w+", shape=(count,))


def flat_column(column: pa.ChunkedArray, name: str) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64]]:
    """(values, offsets) of a list<int> column: row ``i`` is ``values[offsets[i]:offsets[i + 1]]``.
    A single int32 chunk is used in place (a view of the memory-mapped file)."""
    chunks = [chunk for chunk in column.chunks if len(chunk)]
    pieces: list[tuple[npt.NDArray[Any], npt.NDArray[Any]]] = []
    for chunk in chunks:
        if chunk.null_count:
            raise ValueError(f"column {name} has null rows")
        offsets = chunk.offsets.to_numpy()  # accounts for a sliced chunk; .values does not
        start, end = int(offsets[0]), int(offsets[-1])
        values = chunk.values.slice(start, end - start)
        if values.null_count:
            raise ValueError(f"column {name} has null token ids")
        pieces.append((values.to_numpy(zero_copy_only=False), offsets - start))
    if len(pieces) == 1 and pieces[0][0].dtype == np.int32:
        return pieces[0][0], pieces[0][1].astype(np.int64)
    total = sum(len(values) for values, _ in pieces)
    flat = _empty(total, np.int32)
    offsets = np.zeros(sum(len(rel) - 1 for _, rel in pieces) + 1, dtype=np.int64)
    row = value = 0
    for values, rel in pieces:
        flat[value : value + len(values)] = values
        offsets[row + 1 : row + len(rel)] = rel[1:] + value
        row, value = row + len(rel) - 1, value + len(values)
    return flat, offsets


def _prompt_split(
    ids: npt.NDArray[np.int32], labels: npt.NDArray[np.int32], offsets: npt.NDArray[np.int64], name: str
) -> npt.NDArray[np.int64]:
    """Per row, the prompt length: the leading labels that are IGNORE_INDEX; the rest must be the ids."""
    trained = labels != IGNORE_INDEX
    if not np.array_equal(labels[trained], ids[trained]):
        raise ValueError(f"{name}: trained labels differ from the input ids")
    counts = np.concatenate([[0], np.cumsum(trained, dtype=np.int64)])
    answer = counts[offsets[1:]] - counts[offsets[:-1]]
    prompt = np.diff(offsets) - answer
    has = answer > 0
    positions = np.flatnonzero(trained)
    first = positions[np.searchsorted(positions, offsets[:-1][has])]
    if np.any(first - offsets[:-1][has] != prompt[has]):
        raise ValueError(f"{name}: a prompt token is trained after the answer began (train_on_prompt?)")
    return prompt


def _ragged(values: npt.NDArray[np.int32], starts: npt.NDArray[np.int64], lengths: npt.NDArray[np.int64]) -> Ragged:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    total = int(offsets[-1])
    gather = np.repeat(starts - offsets[:-1], lengths) + np.arange(total, dtype=np.int64)
    return Ragged(np.asarray(values[gather], dtype=np.int32), offsets)


def _column_rows(kind: RowKind, table: pa.Table, cutoff_len: int) -> CachedSplit:
    def column(name: str) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64]]:
        if name not in table.column_names:
            raise ValueError(f"no {name} column (it has {', '.join(table.column_names)})")
        return flat_column(table.column(name), name)

    sides = ("chosen_", "rejected_") if kind == "pairwise" else ("",)
    prompts: list[Ragged] = []
    answers: list[Ragged] = []
    for side in sides:
        ids, offsets = column(f"{side}input_ids")
        labels, label_offsets = column(f"{side}labels")
        if not np.array_equal(offsets, label_offsets):
            raise ValueError(f"{side}labels and {side}input_ids differ in length")
        prompt = _prompt_split(ids, labels, offsets, f"{side}labels")
        prompts.append(_ragged(ids, offsets[:-1], prompt))
        answers.append(_ragged(ids, offsets[:-1] + prompt, np.diff(offsets) - prompt))
    if kind == "pairwise" and not (
        np.array_equal(prompts[0].offsets, prompts[1].offsets) and np.array_equal(prompts[0].values, prompts[1].values)
    ):
        raise ValueError("the chosen and rejected rows have different prompts")
    count = len(prompts[0])
    full = prompts[0].lengths + np.maximum.reduce([answer.lengths for answer in answers])
    per_row: dict[str, npt.NDArray[Any]] = {"source": np.arange(count, dtype=np.int64), "full_length": full}
    columns = {"prompt_ids": prompts[0]}
    if kind == "pairwise":
        columns.update(chosen_ids=answers[0], rejected_ids=answers[1])
    else:
        columns["completion_ids"] = answers[0]
        if "kto_tags" not in table.column_names:
            raise ValueError("no kto_tags column")
        tags = table.column("kto_tags")
        if tags.null_count:
            raise ValueError("kto_tags has null values")
        per_row["label"] = tags.to_numpy().astype(bool)
    rows = ColumnRows(kind, columns, per_row)
    return CachedSplit(rows, rows.stats(count, cutoff_len))


def _token_rows(table: pa.Table, stage: str, cutoff_len: int) -> CachedSplit:
    names = table.column_names
    if "input_ids" not in names:
        raise ValueError(f"no input_ids column (it has {', '.join(names)})")
    foreign = {"kto_tags": "kto", "kl_input_ids": "kto", "chosen_input_ids": "rm or dpo"}
    for column, stages in foreign.items():
        if column in names:
            raise ValueError(f"the rows were written for stage {stages} (column {column})")
    for media in MEDIA:
        if media in names and table.column(media).null_count != len(table):
            raise ValueError(f"rows with {media}, which Tunery's tokenized rows do not carry")
    ids, offsets = flat_column(table.column("input_ids"), "input_ids")
    if stage == "pt":
        labels = ids  # LLaMA-Factory's pretraining collator trains on the ids (a labels column is not used)
    elif "labels" not in names:
        raise ValueError(f"pretraining rows (no labels column); stage {stage} trains on labeled rows")
    else:
        labels, label_offsets = flat_column(table.column("labels"), "labels")
        if not np.array_equal(offsets, label_offsets):
            raise ValueError("labels and input_ids differ in length")
    positions = None
    if "position_ids" in names:
        positions, position_offsets = flat_column(table.column("position_ids"), "position_ids")
        if not np.array_equal(offsets, position_offsets):
            raise ValueError("position_ids and input_ids differ in length")
    rows = TokenRows(ids, labels, offsets, positions)
    return CachedSplit(rows, compute_stats(rows.lengths, rows, 0, 0, cutoff_len))


def read_lf(folder: Path, stage: str, row_kind: RowKind | None, cutoff_len: int) -> dict[str, CachedSplit]:
    """The splits of LLaMA-Factory's ``save_to_disk`` folder as Tunery rows of the stage (ValueError when a
    split's columns do not fit the stage)."""
    import datasets  # type: ignore[import-untyped]

    if row_kind == "prompt":
        raise TokenizeError(f"stage {stage} needs each prompt's text, which LLaMA-Factory's tokenized rows do not keep")
    loaded = datasets.load_from_disk(str(folder))
    parts = dict(loaded) if isinstance(loaded, datasets.DatasetDict) else {"train": loaded}
    splits: dict[str, CachedSplit] = {}
    for name, dataset in parts.items():
        if not isinstance(dataset, datasets.Dataset):
            raise ValueError(f"split {name} is not a dataset")
        if dataset._indices is not None:  # save_to_disk writes selected rows out; a guard
            dataset = dataset.flatten_indices()
        table = dataset.data.table
        try:
            if row_kind is None:
                splits[tunery_split_name(name)] = _token_rows(table, stage, cutoff_len)
            else:
                splits[tunery_split_name(name)] = _column_rows(row_kind, table, cutoff_len)
        except ValueError as exc:
            raise ValueError(f"split {name}: {exc}") from exc
    return splits


# ---- writing -----------------------------------------------------------------------------------------------


def _batches(offsets: npt.NDArray[np.int64]) -> Iterator[tuple[int, int]]:
    rows, start = len(offsets) - 1, 0
    while start < rows:
        by_tokens = int(np.searchsorted(offsets, int(offsets[start]) + BATCH_TOKENS, side="right")) - 1
        stop = max(start + 1, min(start + BATCH_ROWS, by_tokens, rows))
        yield start, stop
        start = stop


def _segments(positions: npt.NDArray[np.int32], offsets: npt.NDArray[np.int64]) -> npt.NDArray[np.int32]:
    """Each token's sequence number inside its packed row, from 1 (LLaMA-Factory's neat-packing mask)."""
    starts = np.cumsum(positions == 0, dtype=np.int64)
    before = np.concatenate([[0], starts])[offsets[:-1]]
    return (starts - np.repeat(before, np.diff(offsets))).astype(np.int32)


def _table(rows: TokenRows, pretraining: bool, neat: bool) -> pa.Table:
    import pyarrow as pa  # type: ignore[import-untyped]

    offsets = np.asarray(rows.offsets, dtype=np.int64)
    ranges = list(_batches(offsets)) or [(0, 0)]
    widest = max(int(offsets[stop] - offsets[start]) for start, stop in ranges)
    ones = np.ones(widest, dtype=np.int8)  # the unpacked attention mask, shared by every batch
    batches = []
    for start, stop in ranges:
        base, end = int(offsets[start]), int(offsets[stop])
        relative = pa.array((offsets[start : stop + 1] - base).astype(np.int32))

        def listed(values: npt.NDArray[Any], base: int = base, end: int = end, relative: Any = relative) -> Any:
            return pa.ListArray.from_arrays(relative, pa.array(np.asarray(values[base:end])))

        columns = {"input_ids": listed(rows.input_ids)}
        if neat and rows.position_ids is not None:
            segments = _segments(np.asarray(rows.position_ids[base:end]), offsets[start : stop + 1] - base)
            columns["attention_mask"] = pa.ListArray.from_arrays(relative, pa.array(segments))
        else:
            columns["attention_mask"] = pa.ListArray.from_arrays(relative, pa.array(ones[: end - base]))
        if not pretraining:
            columns["labels"] = listed(rows.labels)
            if rows.position_ids is not None:
                columns["position_ids"] = listed(rows.position_ids)
            for media in MEDIA:
                columns[media] = pa.nulls(stop - start)
        batches.append(pa.RecordBatch.from_pydict(columns))
    return pa.Table.from_batches(batches)


def write_lf(folder: Path, splits: Mapping[str, CachedSplit], pretraining: bool, neat: bool) -> list[str]:
    """Write the token-row splits into ``folder`` in LLaMA-Factory's layout (beside Tunery's files); returns
    the LLaMA-Factory split names written (none for preference rows, whose layout is not written)."""
    import datasets  # type: ignore[import-untyped]
    from datasets.table import InMemoryTable  # type: ignore[import-untyped]

    token_splits = {name: split for name, split in splits.items() if isinstance(split.rows, TokenRows)}
    if len(token_splits) != len(splits) or "train" not in token_splits:
        return []
    parts = {}
    for name, split in token_splits.items():
        assert isinstance(split.rows, TokenRows)
        parts[lf_split_name(name)] = datasets.Dataset(InMemoryTable(_table(split.rows, pretraining, neat)))
    quiet = datasets.utils.are_progress_bars_disabled()
    datasets.disable_progress_bars()  # a bar per split would go to the job's log
    try:
        datasets.DatasetDict(parts).save_to_disk(str(folder))
    finally:
        if not quiet:
            datasets.enable_progress_bars()
    return list(parts)

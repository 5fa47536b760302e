"""pt / sft data in memory that does not grow with the number of rows.

Steps: hash the files (the cache key; a hit reads the entry and its stored report, nothing else); read every
dataset in chunks, converting and tokenizing each chunk (in ``preprocessing_num_workers`` processes) into an
on-disk row store (``spill``); choose the train and eval rows by index as ``load_examples`` does
(``data.selection``); write each split into the cache entry chunk by chunk (``gather``); memory-map it for
training. Token ids, labels, row order, statistics and the report equal the in-memory pipeline's.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tunery.engine.data.api import DataError, RowError, ValidationReport
from tunery.engine.data.convert import RowSink, converter_for
from tunery.engine.data.fingerprint import fingerprint
from tunery.engine.data.hub import hub_tokens
from tunery.engine.data.load import SourcePlan, plan_sources, warn_one_label
from tunery.engine.data.selection import Indices, Selection, draw_positions, select, valid_rows
from tunery.engine.data.sources import Source
from tunery.engine.templates.base import ChatTemplate
from tunery.engine.tokenize.cache import CachedSplit, EntryWriter, TokenCache, cache_key, read_meta, read_splits
from tunery.engine.tokenize.encode import Recipe
from tunery.engine.tokenize.gather import write_blocks, write_packed, write_rows
from tunery.engine.tokenize.pretrain import adds_bos
from tunery.engine.tokenize.spill import RowStore, SpilledSource, StoredRows, spill_source
from tunery.engine.tokenize.spill_columns import ColumnStore, StoredColumns, write_columns
from tunery.engine.tokenize.stats import TokenStats
from tunery.spec.job import JobSpec

#: Scratch folders (row stores) in the cache folder: ``.flat-<host>-<pid>-<random>``.
SCRATCH_PREFIX = ".flat-"
#: Row errors kept in a cache entry's report (the count stays exact).
STORED_ERRORS = 1000
EVAL_PREFIX = "eval/"


@dataclass
class FlatResult:
    splits: dict[str, CachedSplit]
    report: ValidationReport
    key: str
    cache_path: Path | None
    from_cache: bool


def supports(spec: JobSpec, recipe: Recipe) -> bool:
    """Whether this pipeline builds the job's data: everything read up front (streaming reads as it trains)."""
    del recipe  # every stage's rows: token rows (pt, sft) and the column rows of the others
    return not spec.data.streaming


def build_flat(
    spec: JobSpec,
    tokenizer: Any,
    template: ChatTemplate | None,
    cache_dir: Path | None,
    recipe: Recipe,
    options: dict[str, Any],
) -> FlatResult:
    """The job's tokenized splits (cached by content under ``cache_dir``), memory-mapped."""
    data, stage = spec.data, spec.method.stage
    seed = spec.training.data_seed if spec.training.data_seed is not None else spec.training.seed
    report = ValidationReport()
    plan = plan_sources(data, stage, report, None, hub_tokens(spec.model))
    key = cache_key(fingerprint(data, stage, seed, plan.train, plan.evaluation), template, tokenizer, options)
    cache = TokenCache(cache_dir) if cache_dir is not None else None
    if cache is not None and not data.overwrite_cache:
        cached = cache.load(key)
        if cached is not None:
            _restore_report(read_meta(cache.path(key)).get("report"), report)
            return FlatResult(cached, report, key, cache.path(key), True)
    if cache_dir is not None:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        _sweep(Path(cache_dir))
    scratch = Path(tempfile.mkdtemp(prefix=f"{_scratch_owner()}{os.getpid()}-", dir=cache_dir))
    try:
        store, spilled = _spill(plan, spec, tokenizer, template, recipe, scratch)
        selection = _select(spec, seed, plan, spilled, report)
        if isinstance(store, StoredColumns) and store.kind == "kto" and len(selection.train):
            warn_one_label(store.label_counts(selection.train), report)
        final = cache.path(key) if cache is not None else scratch / "entry"
        _write(EntryWriter(final), selection, store, recipe, tokenizer, key, report)
        splits = read_splits(final, key)  # memory-mapped: the files stay readable once the scratch is gone
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return FlatResult(splits, report, key, final if cache is not None else None, False)


def _scratch_owner() -> str:
    """``.flat-<host>-``: a shared cache folder may serve workers on several hosts (their pids differ)."""
    host = "".join(c if c.isalnum() else "_" for c in socket.gethostname())[:40]
    return f"{SCRATCH_PREFIX}{host}-"


def _sweep(cache_dir: Path) -> None:
    """Remove row stores this host's killed processes left (a finished or failed build removes its own)."""
    owner = _scratch_owner()
    for folder in cache_dir.glob(f"{owner}*"):
        pid = folder.name.removeprefix(owner).split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _spill(
    plan: SourcePlan,
    spec: JobSpec,
    tokenizer: Any,
    template: ChatTemplate | None,
    recipe: Recipe,
    scratch: Path,
) -> tuple[StoredRows | StoredColumns, list[SpilledSource]]:
    data = spec.data
    store: RowStore | ColumnStore
    if recipe.row_kind is not None:
        store = ColumnStore(scratch, recipe.row_kind)
    else:
        store = RowStore(scratch, documents=recipe.stage == "pt" and recipe.packing)
    encode = {"tokenizer": tokenizer, "template": template, "recipe": recipe}
    workers = data.preprocessing_num_workers or 1
    spilled = []
    for source in plan.train + plan.evaluation:
        # without num_samples, max_samples takes the first rows: the rest need not be read
        limit = data.max_samples if source.attr.num_samples is None else None
        converter = converter_for(source.attr, plan.context(source))
        spilled.append(spill_source(source, converter, store, encode, workers, limit, data.preprocessing_batch_size))
    return store.finish(), spilled


def _select(
    spec: JobSpec, seed: int, plan: SourcePlan, spilled: list[SpilledSource], report: ValidationReport
) -> Selection:
    rng = np.random.RandomState(seed)  # LF samples num_samples with numpy's global, seeded generator
    chosen: list[Indices] = []
    for source, part in zip(plan.train + plan.evaluation, spilled, strict=True):
        positions = None
        if part.attr.num_samples is not None:
            positions = draw_positions(part.index.raw_count, part.attr.num_samples, spec.data.max_samples, rng)
        _report(source, part, positions, report)
        chosen.append(valid_rows(part.index, positions))
    count = len(plan.train)
    names = [source.attr.name for source in plan.evaluation]
    return select(spec.data, seed, chosen[:count], chosen[count:], names)


def _report(source: Source, part: SpilledSource, positions: list[int] | None, report: ValidationReport) -> None:
    """The dataset's row counts and errors, as ``convert.convert_files`` reports them."""
    if part.index.raw_count == 0:
        where = ", ".join(source.files) if source.hub is None else source.hub_label
        raise DataError(f"dataset '{part.attr.name}' has no rows ({where})")
    sink = RowSink(part.attr, report)
    errors: list[RowError] = part.errors
    checked = part.index.raw_count
    if positions is not None:  # the sampled rows only, in the order the sample first reaches them
        unique, first = np.unique(np.asarray(positions, dtype=np.int64), return_index=True)
        slot = np.searchsorted(unique, part.error_rows)
        slot[slot == len(unique)] = 0
        kept = np.flatnonzero(unique[slot] == part.error_rows) if len(unique) else np.zeros(0, np.int64)
        order = kept[np.argsort(first[slot[kept]], kind="stable")]
        errors = [part.errors[i] for i in order.tolist()]
        checked = len(unique)
    for error in errors:
        sink.error(error.file, error.row, error.field, error.message)
    report.count_rows(part.attr.name, checked, checked - sink.bad)
    if checked - sink.bad == 0:
        raise sink.no_valid_row(checked)


def _write(
    writer: EntryWriter,
    selection: Selection,
    store: StoredRows | StoredColumns,
    recipe: Recipe,
    tokenizer: Any,
    key: str,
    report: ValidationReport,
) -> None:
    splits: dict[str, Indices] = {"train": selection.train}
    if selection.eval_by_dataset:
        splits.update({EVAL_PREFIX + name: rows for name, rows in selection.eval_by_dataset.items()})
    elif selection.eval is not None:
        splits["eval"] = selection.eval
    cutoff = recipe.options.cutoff_len
    try:
        for name, rows in splits.items():
            if isinstance(store, StoredColumns):
                stats, dropped = write_columns(writer, name, store, rows, cutoff)
                if len(dropped):
                    refs = store.refs(rows[dropped[:5]])
                    report.warn(dropped_warning(name, stats, refs))
            elif store.documents:
                bos = int(tokenizer.bos_token_id) if adds_bos(tokenizer) else None
                write_blocks(writer, name, store, rows, cutoff, bos)
            elif recipe.pack_mode != "none":
                write_packed(writer, name, store, rows, cutoff, neat=recipe.pack_mode == "neat")
            else:
                write_rows(writer, name, store, rows, cutoff)
    except BaseException:
        writer.abort()
        raise
    writer.commit(key, {"report": _stored_report(report)})


def dropped_warning(split: str, stats: TokenStats, refs: list[tuple[str, int]]) -> str:
    """Rows the cutoff left without room for an answer are dropped (as LF drops unusable rows): say which."""
    where = " (" + "; ".join(f"{file}, row {row}" for file, row in refs) + ")" if refs else ""
    return (
        f"{split}: {stats.dropped} of {stats.examples} rows dropped: {no_room(stats.cutoff_len)}{where}; "
        "raise cutoff_len to keep them"
    )


def no_room(cutoff_len: int) -> str:
    return f"the prompt leaves no room for the answer within cutoff_len={cutoff_len}"


def _stored_report(report: ValidationReport) -> dict[str, Any]:
    return {
        "rows_total": report.rows_total,
        "rows_valid": report.rows_valid,
        "error_count": report.error_count,
        "errors": [asdict(error) for error in report.errors[:STORED_ERRORS]],
        "warnings": list(report.warnings),
        "by_dataset": {name: asdict(count) for name, count in report.by_dataset.items()},
    }


def _restore_report(stored: dict[str, Any] | None, report: ValidationReport) -> None:
    """A cache hit's report: the one stored with the entry (the files are the same, byte for byte)."""
    if not stored:
        return
    for error in stored.get("errors", []):
        report.add_error(RowError(**error))
    report.error_count = int(stored.get("error_count", report.error_count))
    for name, counts in stored.get("by_dataset", {}).items():
        report.count_rows(name, int(counts["rows_total"]), int(counts["rows_valid"]))
    for warning in stored.get("warnings", []):
        report.warn(warning)

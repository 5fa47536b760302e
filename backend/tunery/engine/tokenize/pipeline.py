"""Job spec -> tokenized train/eval datasets, collator and statistics (cached by content)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset, IterableDataset

from tunery.engine.data.api import LoadedData, ValidationReport
from tunery.engine.data.hub import hub_tokens
from tunery.engine.data.types import Example
from tunery.engine.gc_pause import paused_gc
from tunery.engine.templates.base import ChatTemplate
from tunery.engine.tokenize import flat
from tunery.engine.tokenize.cache import CachedSplit, TokenCache, cache_key
from tunery.engine.tokenize.collate import PackedCollator, PaddingCollator
from tunery.engine.tokenize.columns import ColumnDataset, ColumnRows
from tunery.engine.tokenize.encode import Recipe, encode_all
from tunery.engine.tokenize.errors import TokenizeError
from tunery.engine.tokenize.rows import IGNORE_INDEX, TokenizedDataset, TokenRows
from tunery.engine.tokenize.saved import has_saved_data, load_saved, save
from tunery.engine.tokenize.stats import TokenStats
from tunery.engine.tokenize.stream import StreamingTokenizedDataset
from tunery.engine.tokenize.supervised import EncodeOptions
from tunery.spec.job import JobSpec

Collator = Callable[[list[dict[str, Any]]], dict[str, Any]]
Rows = Dataset[dict[str, list[int]]] | IterableDataset[dict[str, list[int]]] | Dataset[dict[str, Any]]
#: one eval set, or one per eval dataset (``eval_on_each_dataset``), as transformers' Trainer accepts
EvalDataset = Rows | dict[str, Rows]


@dataclass
class TrainingData:
    """What the trainer needs: datasets of token dicts, the collator that batches them, statistics.

    pt / sft rows are ``{"input_ids", "attention_mask", "labels"[, "position_ids"]}``; the preference and RL
    stages get the rows of ``tokenize.columns`` (pairwise, kto, prompt) and do not use ``collator``.
    ``train_dataset`` is an ``IterableDataset`` when ``data.streaming`` (tokenized as it is read).
    ``eval_dataset`` is a dict of name -> dataset with ``eval_on_each_dataset``.
    ``stats`` / ``eval_stats`` are None for streamed data (lengths are unknown until consumed).
    ``from_cache``: the rows were read from ``cache_path`` instead of being tokenized.
    """

    train_dataset: Rows
    eval_dataset: EvalDataset | None
    collator: Collator
    stats: TokenStats | None
    eval_stats: TokenStats | dict[str, TokenStats] | None = None
    cache_path: Path | None = None
    from_cache: bool = False
    #: the data layer's report (rows read/kept, row errors, warnings); fills while streaming
    report: ValidationReport | None = None


def recipe_for(spec: JobSpec, template: ChatTemplate | None) -> Recipe:
    """Encoding settings of a job. Packed SFT sequences get ``cutoff_len - 1`` tokens, as in
    LLaMA-Factory (it reserves a padding position), so rows and step counts match LF; pretraining
    blocks keep the full ``cutoff_len`` (LF's default packing for pt does not reserve one)."""
    data = spec.data
    stage = spec.method.stage
    packing = bool(data.packing) if data.packing is not None else stage == "pt"
    reserve = 1 if packing and stage != "pt" and data.cutoff_len > 1 else 0
    options = EncodeOptions(
        cutoff_len=data.cutoff_len - reserve,
        train_on_prompt=data.train_on_prompt,
        mask_history=data.mask_history,
        enable_thinking=data.enable_thinking,
        default_system=data.default_system,
    )
    name = template.name if template is not None else data.template
    return Recipe(stage, options, name, packing, data.neat_packing)


def make_collator(spec: JobSpec, tokenizer: Any, recipe: Recipe) -> Collator:
    """Pads batches with the pad token; labels of padding are ignored by the loss unless
    ``ignore_pad_token_for_loss: false``, which pads them with the pad token as LLaMA-Factory does."""
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad_id is None:
        raise TokenizeError("the tokenizer has neither a pad nor an eos token to pad batches with")
    multiple = 8 if recipe.stage != "pt" else None
    label_pad = IGNORE_INDEX if spec.data.ignore_pad_token_for_loss else int(pad_id)
    if recipe.pack_mode == "neat":
        return PackedCollator(int(pad_id), multiple, flatten=spec.model.flash_attn == "fa2", label_pad_id=label_pad)
    return PaddingCollator(int(pad_id), multiple, label_pad_id=label_pad)


def _cache_options(spec: JobSpec, recipe: Recipe) -> dict[str, Any]:
    data = spec.data
    return {
        "stage": recipe.stage,
        "template": recipe.template_name,
        "cutoff_len": data.cutoff_len,
        "train_on_prompt": data.train_on_prompt,
        "mask_history": data.mask_history,
        "packing": recipe.packing,
        "neat_packing": recipe.neat_packing,
        "enable_thinking": data.enable_thinking,
        "default_system": data.default_system,
        "tool_format": data.tool_format,
    }


def load_data(spec: JobSpec) -> LoadedData:
    """Examples of the job's datasets (the data layer: formats, validation, split, mixing)."""
    from tunery.engine.data.load import load_examples

    seed = spec.training.data_seed if spec.training.data_seed is not None else spec.training.seed
    with paused_gc():
        loaded: LoadedData = load_examples(spec.data, spec.method.stage, seed, hub_tokens=hub_tokens(spec.model))
    return loaded


def build_training_data(
    spec: JobSpec, tokenizer: Any, template: ChatTemplate | None, cache_dir: Path | None
) -> TrainingData:
    """Load the job's data and tokenize it (reusing ``cache_dir`` entries keyed by content); with
    ``tokenized_path`` holding data, that data instead (the datasets are not read)."""
    path = spec.data.tokenized_path
    if path and has_saved_data(path):
        recipe = recipe_for(spec, template)
        report = ValidationReport()
        report.warn(
            f"tokenized data read from tokenized_path {path}: the dataset keys are not read (as in "
            "LLaMA-Factory); delete the folder to tokenize the datasets again"
        )
        splits = load_saved(path, recipe)
        collator = make_collator(spec, tokenizer, recipe)
        return _training_data(splits, collator, cache_path=Path(path), from_cache=True, report=report)
    recipe = recipe_for(spec, template)
    if flat.supports(spec, recipe):
        return _build_flat(spec, tokenizer, template, cache_dir, recipe)
    return tokenize_loaded(load_data(spec), spec, tokenizer, template, cache_dir)


def _build_flat(
    spec: JobSpec, tokenizer: Any, template: ChatTemplate | None, cache_dir: Path | None, recipe: Recipe
) -> TrainingData:
    """pt / sft token rows built in memory that does not grow with the rows (``tokenize.flat``)."""
    _check_tool_format(spec, template)
    collator = make_collator(spec, tokenizer, recipe)
    with paused_gc():
        result = flat.build_flat(spec, tokenizer, template, cache_dir, recipe, _cache_options(spec, recipe))
    _check_rows(result.splits["train"].stats, recipe)
    if spec.data.tokenized_path:
        save(spec.data.tokenized_path, result.splits, result.key, recipe)
    return _training_data(
        result.splits, collator, cache_path=result.cache_path, from_cache=result.from_cache, report=result.report
    )


def tokenize_loaded(
    loaded: LoadedData, spec: JobSpec, tokenizer: Any, template: ChatTemplate | None, cache_dir: Path | None
) -> TrainingData:
    """Tokenize already loaded examples: the part of :func:`build_training_data` after loading."""
    _check_tool_format(spec, template)
    recipe = recipe_for(spec, template)
    collator = make_collator(spec, tokenizer, recipe)
    workers = spec.data.preprocessing_num_workers or 1
    if spec.data.streaming:
        if recipe.row_kind is not None:  # the spec rules refuse it; a guard for direct callers
            raise TokenizeError(f"streaming is not supported for stage '{recipe.stage}'")
        if spec.data.tokenized_path:
            raise TokenizeError(
                "tokenized_path: streamed data cannot be saved; turn streaming off to write it (as in LLaMA-Factory)"
            )
        return _streaming(loaded, tokenizer, template, recipe, collator, spec.data.preprocessing_batch_size, workers)

    splits = _splits(loaded)
    cache = TokenCache(cache_dir) if cache_dir is not None else None
    key = cache_key(loaded.fingerprint, template, tokenizer, _cache_options(spec, recipe))
    cached = None
    if cache is not None and not spec.data.overwrite_cache:
        cached = cache.load(key)
    from_cache = cached is not None and list(cached) == list(splits)
    if cached is None or not from_cache:
        with paused_gc():
            cached = {
                name: CachedSplit(*encode_all(examples, tokenizer, template, recipe, workers))
                for name, examples in splits.items()
            }
        if cache is not None:
            cache.store(key, cached)

    _check_rows(cached["train"].stats, recipe)
    _warn_dropped(cached, splits, recipe, loaded.report)
    if spec.data.tokenized_path:
        save(spec.data.tokenized_path, cached, key, recipe)
    cache_path = cache.path(key) if cache is not None else None
    return _training_data(cached, collator, cache_path=cache_path, from_cache=from_cache, report=loaded.report)


def _training_data(
    cached: dict[str, CachedSplit],
    collator: Collator,
    *,
    cache_path: Path | None,
    from_cache: bool,
    report: ValidationReport,
) -> TrainingData:
    evaluation: EvalDataset | None = None
    eval_stats: TokenStats | dict[str, TokenStats] | None = None
    names = [name.removeprefix(_EVAL_PREFIX) for name in cached if name.startswith(_EVAL_PREFIX)]
    if names:
        evaluation = {name: _dataset(cached[_EVAL_PREFIX + name].rows) for name in names}
        eval_stats = {name: cached[_EVAL_PREFIX + name].stats for name in names}
    elif "eval" in cached:
        evaluation, eval_stats = _dataset(cached["eval"].rows), cached["eval"].stats
    return TrainingData(
        train_dataset=_dataset(cached["train"].rows),
        eval_dataset=evaluation,
        collator=collator,
        stats=cached["train"].stats,
        eval_stats=eval_stats,
        cache_path=cache_path,
        from_cache=from_cache,
        report=report,
    )


def _check_tool_format(spec: JobSpec, template: ChatTemplate | None) -> None:
    """``tool_format`` is applied when the template is looked up (``get_template(..., tool_format=)``), so the
    saved chat template writes tools the same way; a template that does not carry it is a caller's mistake."""
    wanted = spec.data.tool_format
    if wanted is None or template is None:
        return
    actual = getattr(getattr(template, "tool_format", None), "name", None)
    if actual != wanted:
        raise TokenizeError(
            f"tool_format {wanted!r}: the chat template {template.name!r} writes tools as {actual!r}; look the "
            "template up with get_template(name, tokenizer, tool_format=data.tool_format)"
        )


_EVAL_PREFIX = flat.EVAL_PREFIX


def _dataset(rows: TokenRows | ColumnRows) -> Rows:
    return ColumnDataset(rows) if isinstance(rows, ColumnRows) else TokenizedDataset(rows)


def _no_room(recipe: Recipe) -> str:
    return flat.no_room(recipe.options.cutoff_len)


def _warn_dropped(
    cached: dict[str, CachedSplit], splits: dict[str, Iterable[Example]], recipe: Recipe, report: ValidationReport
) -> None:
    """Rows the cutoff left without room for an answer are dropped (as LF drops unusable rows): say which."""
    for name, split in cached.items():
        rows = split.rows
        if not isinstance(rows, ColumnRows) or not split.stats.dropped:
            continue
        examples = splits[name]
        kept = set(rows.per_row["source"].tolist())
        dropped = [i for i in range(split.stats.examples) if i not in kept]
        refs = []
        if isinstance(examples, list):
            refs = [(ref.file, ref.row) for i in dropped[:5] if (ref := examples[i].ref) is not None]
        report.warn(flat.dropped_warning(name, split.stats, refs))


def _check_rows(stats: TokenStats, recipe: Recipe) -> None:
    if stats.rows or not stats.examples:
        return
    if recipe.row_kind is not None:
        raise TokenizeError(f"all {stats.examples} rows were dropped: {_no_room(recipe)}; raise cutoff_len")
    if recipe.stage == "pt" and recipe.packing:
        raise TokenizeError(
            f"pretraining packing: the {stats.examples} documents hold fewer tokens than one block of "
            f"cutoff_len={recipe.options.cutoff_len}; lower cutoff_len or add data"
        )
    raise TokenizeError(f"none of the {stats.examples} examples gave a training row")


def _splits(loaded: LoadedData) -> dict[str, Iterable[Example]]:
    """Named example sets: train, then eval (or one eval set per dataset)."""
    splits: dict[str, Iterable[Example]] = {"train": loaded.train}
    if loaded.eval_by_dataset:
        for name, examples in loaded.eval_by_dataset.items():
            splits[_EVAL_PREFIX + name] = examples
    elif loaded.eval is not None:
        splits["eval"] = loaded.eval
    return splits


def _streaming(
    loaded: LoadedData,
    tokenizer: Any,
    template: ChatTemplate | None,
    recipe: Recipe,
    collator: Collator,
    size: int,
    workers: int,
) -> TrainingData:
    def stream(examples: Iterable[Example]) -> StreamingTokenizedDataset:
        return StreamingTokenizedDataset(examples, tokenizer, template, recipe, size, workers)

    evaluation: EvalDataset | None = None
    if loaded.eval_by_dataset:
        evaluation = {name: stream(examples) for name, examples in loaded.eval_by_dataset.items()}
    elif loaded.eval is not None:
        evaluation = stream(loaded.eval)
    return TrainingData(stream(loaded.train), evaluation, collator, stats=None, report=loaded.report)

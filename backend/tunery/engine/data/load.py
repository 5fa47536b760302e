"""Public entry points: load the examples of a job's datasets, or only validate every row.

``load_examples`` reads ``data.dataset`` (and ``data.eval_dataset``) from ``data.dataset_dir`` (relative
paths resolve against the current directory, as in LLaMA-Factory), converts rows into examples for the
stage, mixes the datasets and splits off the validation set.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain, islice

import numpy as np

from tunery.engine.data.api import DataError, HubTokens, LoadedData, ValidationReport
from tunery.engine.data.convert import RowSink, convert_files, convert_row, converter_for
from tunery.engine.data.fingerprint import fingerprint
from tunery.engine.data.formats import Context, Shape, shape_for_stage
from tunery.engine.data.formats.shapes import stages_for_dataset
from tunery.engine.data.jsonio import gc_paused
from tunery.engine.data.mixing import buffer_shuffle, mix, mix_streams, sample_positions, split_validation
from tunery.engine.data.registry import DatasetAttr, get_dataset_attrs
from tunery.engine.data.sources import Source, resolve_source
from tunery.engine.data.stream import ExampleStream, LazyDataset
from tunery.engine.data.types import Example
from tunery.spec.data import DataSection
from tunery.spec.stages import stages_for_shape

__all__ = ["data_fingerprint", "load_examples", "plan_sources", "validate_datasets", "warn_one_label"]


@dataclass
class SourcePlan:
    shape: Shape
    train: list[Source]
    evaluation: list[Source]
    media_dir: str

    def context(self, source: Source) -> Context:
        local = source.attr.load_from in ("file", "script", "cloud_file")
        return Context(self.shape, self.media_dir if local else None)


def _check_stage(attr: DatasetAttr, shape: Shape, stage: str) -> None:
    """The dataset's kind must fit the stage; the message says which stages it can feed instead."""
    fits = ", ".join(stages_for_dataset(attr.ranking, attr.kto_tag is not None))
    if shape == "pairwise" and not attr.ranking:
        raise DataError(
            f"dataset '{attr.name}' is not preference data, which stage '{stage}' needs (a prompt with a chosen "
            'and a rejected answer): set "ranking": true and map "chosen"/"rejected" columns in dataset_info.json; '
            f"as it is, this dataset can feed stages {fits}"
        )
    if shape != "pairwise" and attr.ranking:
        raise DataError(
            f"dataset '{attr.name}' is preference data (ranking: true); use it with stage "
            f"{' or '.join(stages_for_shape('pairwise'))}, not '{stage}'"
        )
    if shape == "kto" and attr.kto_tag is None:
        raise DataError(
            f"dataset '{attr.name}' has no desirable/undesirable tag, which stage '{stage}' needs: map a boolean "
            f"column as \"kto_tag\" in dataset_info.json (KTO data needs a 'kto_tag' column); as it is, this "
            f"dataset can feed stages {fits}"
        )
    if shape != "kto" and attr.kto_tag is not None:
        raise DataError(
            f"dataset '{attr.name}' is KTO data (a 'kto_tag' column marks answers desirable or not): its "
            f"undesirable answers would be trained as good ones; use it with stage {fits}, not '{stage}'"
        )


def warn_one_label(counts: Counter[bool | None], report: ValidationReport) -> None:
    """KTO learns by contrasting desirable and undesirable answers; one kind only is worth a warning
    (TRL trains on it anyway, as LLaMA-Factory does). ``counts``: training rows per KTO label."""
    if len(counts) == 1:
        label, total = next(iter(counts.items()))
        kind = "desirable (kto_tag true)" if label else "undesirable (kto_tag false)"
        report.warn(
            f"KTO: all {total} training rows are {kind}; KTO contrasts desirable with undesirable answers, "
            "add rows of the other kind for a useful signal"
        )


def plan_sources(
    data: DataSection, stage: str, report: ValidationReport, cache_dir: str | None, tokens: HubTokens | None = None
) -> SourcePlan:
    shape = shape_for_stage(stage)
    if not data.dataset and not data.eval_dataset:
        raise DataError("no dataset to load: set 'dataset' to names from dataset_info.json")
    if data.val_size > 1e-6 and data.eval_dataset:
        raise DataError("val_size and eval_dataset cannot both be set: use one way to get validation data")
    if data.streaming and 0 < data.val_size < 1:
        raise DataError("val_size must be a whole number of rows when streaming")
    groups: list[list[Source]] = []
    for names in (data.dataset, data.eval_dataset):
        attrs, warnings = get_dataset_attrs(names, data.dataset_dir)
        for warning in warnings:
            report.warn(warning)
        sources = []
        for attr in attrs:
            _check_stage(attr, shape, stage)
            source, found = resolve_source(attr, data.dataset_dir, cache_dir, data.streaming, tokens)
            for warning in found:
                report.warn(warning)
            if data.streaming and attr.num_samples is not None:
                report.warn(f"dataset '{attr.name}': num_samples is ignored when streaming (as in LLaMA-Factory)")
            sources.append(source)
        groups.append(sources)
    return SourcePlan(shape, groups[0], groups[1], data.media_dir or data.dataset_dir)


def data_fingerprint(
    data: DataSection, stage: str, seed: int, *, cache_dir: str | None = None, hub_tokens: HubTokens | None = None
) -> str:
    """The fingerprint ``load_examples`` would give, without converting anything (hashes the files)."""
    plan = plan_sources(data, stage, ValidationReport(), cache_dir, hub_tokens)
    return fingerprint(data, stage, seed, plan.train, plan.evaluation)


def _load_list(
    plan: SourcePlan, source: Source, data: DataSection, rng: np.random.RandomState, report: ValidationReport
) -> list[Example]:
    convert = converter_for(source.attr, plan.context(source))
    files = source.read()
    total = sum(len(raw.rows) for raw in files)
    if total == 0:
        where = ", ".join(raw.path for raw in files)
        raise DataError(f"dataset '{source.attr.name}' has no rows ({where})")
    positions: list[int] | None = None
    if source.attr.num_samples is not None:
        positions = sample_positions(total, source.attr.num_samples, rng)
    if data.max_samples is not None and data.max_samples < (total if positions is None else len(positions)):
        positions = list(range(data.max_samples)) if positions is None else positions[: data.max_samples]
    return convert_files(source.attr, convert, files, report, positions)


def load_examples(
    data: DataSection,
    stage: str,
    seed: int,
    *,
    cache_dir: str | None = None,
    max_errors: int | None = None,
    hub_tokens: HubTokens | None = None,
) -> LoadedData:
    """The train / eval examples of a job (lists, or lazy iterables when ``data.streaming``); ``hub_tokens``:
    access tokens of the hubs that hub datasets come from."""
    report = ValidationReport(max_errors=max_errors)
    plan = plan_sources(data, stage, report, cache_dir, hub_tokens)
    digest = fingerprint(data, stage, seed, plan.train, plan.evaluation)
    if data.streaming:
        return _load_streaming(plan, data, seed, report, digest)
    rng = np.random.RandomState(seed)  # LF samples num_samples with numpy's global, seeded generator
    with gc_paused():
        train_parts = [_load_list(plan, source, data, rng, report) for source in plan.train]
        eval_parts = [_load_list(plan, source, data, rng, report) for source in plan.evaluation]
    train: list[Example] = mix(train_parts, data.mix_strategy, data.interleave_probs, seed) if train_parts else []
    evaluation: list[Example] | None = None
    by_dataset: dict[str, list[Example] | Iterable[Example]] | None = None
    if eval_parts:
        if data.eval_on_each_dataset:
            by_dataset = {source.attr.name: part for source, part in zip(plan.evaluation, eval_parts, strict=True)}
            evaluation = list(chain.from_iterable(eval_parts))
        else:
            evaluation = mix(eval_parts, data.mix_strategy, _probs(data, eval_parts), seed)
    if plan.shape == "kto" and train:
        warn_one_label(Counter(example.kto_label for example in train), report)
    if data.val_size > 1e-6 and train:
        train, evaluation = split_validation(train, data.val_size, seed)
    return LoadedData(train, evaluation, report, digest, by_dataset)


def _probs(data: DataSection, parts: Sequence[object]) -> list[float] | None:
    """interleave_probs for the eval datasets when they match in number (they are for the train ones)."""
    probs = data.interleave_probs
    return probs if probs is not None and len(probs) == len(parts) else None


def _load_streaming(
    plan: SourcePlan, data: DataSection, seed: int, report: ValidationReport, digest: str
) -> LoadedData:
    def lazy(source: Source) -> LazyDataset:
        return LazyDataset(source, converter_for(source.attr, plan.context(source)), report, data.max_samples)

    train_parts, eval_parts = [lazy(s) for s in plan.train], [lazy(s) for s in plan.evaluation]
    train: ExampleStream | list[Example] = []
    evaluation: ExampleStream | None = None
    if train_parts:
        mixed = mix_streams(train_parts, data.mix_strategy, data.interleave_probs, seed)
        count = int(data.val_size)
        train = ExampleStream(lambda: islice(buffer_shuffle(mixed(), data.buffer_size, seed), count, None))
        if count:
            evaluation = ExampleStream(lambda: islice(buffer_shuffle(mixed(), data.buffer_size, seed), count))
    by_dataset: dict[str, list[Example] | Iterable[Example]] | None = None
    if eval_parts:
        mixed_eval = mix_streams(eval_parts, data.mix_strategy, _probs(data, eval_parts), seed)
        evaluation = ExampleStream(lambda: buffer_shuffle(mixed_eval(), data.buffer_size, seed))
        if data.eval_on_each_dataset:
            by_dataset = {
                part.source.attr.name: ExampleStream(_shuffled(part, data.buffer_size, seed)) for part in eval_parts
            }
    return LoadedData(train, evaluation, report, digest, by_dataset)


def _shuffled(part: Callable[[], Iterator[Example]], buffer_size: int, seed: int) -> Callable[[], Iterator[Example]]:
    return lambda: buffer_shuffle(part(), buffer_size, seed)


def validate_datasets(
    data: DataSection, stage: str, *, max_errors: int | None = None, hub_tokens: HubTokens | None = None
) -> ValidationReport:
    """Check every row of every dataset (train and eval; max_samples and num_samples do not apply).

    Dataset-level problems (unknown name, missing file, offline hub dataset) raise :class:`DataError`;
    bad rows are in the report.
    """
    report = ValidationReport(max_errors=max_errors)
    plan = plan_sources(data, stage, report, None, hub_tokens)
    seen: set[str] = set()
    labels: Counter[bool | None] = Counter()  # KTO: training rows per label, to check both occur
    for source in plan.train + plan.evaluation:
        if source.attr.name in seen:
            continue
        seen.add(source.attr.name)
        convert = converter_for(source.attr, plan.context(source))
        sink = RowSink(source.attr, report)
        checked = 0
        keep = plan.shape == "kto" and any(source is train for train in plan.train)
        with gc_paused():
            for path, number, row in source.iter_rows():
                checked += 1
                example = convert_row(convert, sink, path, number, row)
                if keep and example is not None:
                    labels[example.kto_label] += 1
        report.count_rows(source.attr.name, checked, checked - sink.bad)
    if labels:
        warn_one_label(labels, report)
    return report

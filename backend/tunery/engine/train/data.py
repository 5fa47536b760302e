"""The tokenized data a stage trains on, as produced by ``tunery.engine.tokenize.pipeline``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from tunery.engine.templates import ChatTemplate, TemplateError, apply_template_to_tokenizer, get_template
from tunery.engine.train.errors import TrainingError, invalid_spec

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from tunery.spec import JobSpec


class TrainingDataLike(Protocol):
    """What training needs from the tokenization step (``TrainingData``)."""

    @property
    def train_dataset(self) -> Any: ...  # pt/sft: input_ids, attention_mask, labels; others: tokenize.columns rows

    @property
    def eval_dataset(self) -> Any | None: ...

    @property
    def collator(self) -> Callable[[list[dict[str, Any]]], dict[str, Any]]: ...

    @property
    def stats(self) -> Any: ...


DataBuilder = Callable[["JobSpec", "PreTrainedTokenizerBase", "ChatTemplate | None", "Path | None"], TrainingDataLike]


def build_training_data(
    spec: JobSpec, tokenizer: PreTrainedTokenizerBase, template: ChatTemplate | None, cache_dir: Path | None
) -> TrainingDataLike:
    """Load, validate and tokenize the job's datasets (the tokenize pipeline, imported when needed)."""
    from tunery.engine.tokenize.pipeline import build_training_data as build

    data: TrainingDataLike = build(spec, tokenizer, template, cache_dir)
    return data


def load_template(spec: JobSpec, tokenizer: PreTrainedTokenizerBase) -> ChatTemplate | None:
    """The chat template named by ``data.template`` (none/auto: the tokenizer's own). Pre-training on raw
    text needs none, so there a missing tokenizer template is not an error."""
    try:
        return get_template(spec.data.template, tokenizer, tool_format=spec.data.tool_format)
    except TemplateError as exc:
        if spec.method.stage == "pt" and spec.data.template in (None, "auto"):
            return None
        key = "tool_format" if spec.data.tool_format and "tool format" in str(exc).lower() else "template"
        raise invalid_spec(key, str(exc)) from exc


def build_data_checked(
    builder: DataBuilder,
    spec: JobSpec,
    tokenizer: PreTrainedTokenizerBase,
    template: ChatTemplate | None,
    cache_dir: Path | None,
) -> TrainingDataLike:
    """Run the data builder; a row the template cannot render is a data problem, not an engine bug."""
    try:
        return builder(spec, tokenizer, template, cache_dir)
    except TemplateError as exc:
        raise TrainingError("invalid_data", str(exc)) from exc


def apply_template(template: ChatTemplate | None, tokenizer: PreTrainedTokenizerBase) -> None:
    """Store the template as the saved tokenizer's chat template, so inference formats prompts the same."""
    if template is not None:
        apply_template_to_tokenizer(template, tokenizer)


def data_warnings(data: TrainingDataLike) -> list[str]:
    """The data layer's warnings (dataset_info oddities, rows dropped by the cutoff, one-label KTO data)."""
    report = getattr(data, "report", None)
    return list(getattr(report, "warnings", None) or [])


def num_rows(dataset: Any) -> int | None:
    try:
        return len(dataset)
    except TypeError:  # streaming datasets have no length
        return None

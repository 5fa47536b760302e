"""The rows a prediction run generates for, by LLaMA-Factory 0.9.5's rules for ``do_predict``
(``predict_with_generate``: its ``UnsupervisedDatasetProcessor`` and ``Template.encode_oneturn``):

- The prompt is every turn before the last answer as the chat template renders it (prefix, system or
  ``default_system``, tools, earlier turns with their answers, the assistant opener); the label is the last
  answer as the template renders it, with its end-of-turn marker; templates with efficient eos get the
  tokenizer's eos appended to the label. Pieces are tokenized one by one and concatenated, as LF encodes
  message by message.
- Both are cut by ``infer_seqlen(len(prompt), len(label), cutoff_len)``: each keeps its start. Unlike the
  training stages no row is dropped (LF predicts for every row, an empty prompt or label included).
- ``max_samples`` applies to each eval dataset; with ``val_size`` (and no ``eval_dataset``) the rows are the
  validation split of ``dataset``, drawn as training draws it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunery.engine.templates.base import ChatTemplate
from tunery.engine.tokenize.errors import TokenizeError
from tunery.engine.tokenize.supervised import EncodeOptions, check_conversation, infer_seqlen
from tunery.engine.tokenize.text import encode_pool

if TYPE_CHECKING:
    from tunery.engine.data.types import Example
    from tunery.spec import JobSpec


@dataclass
class PredictRow:
    """One row to predict: token ids of the prompt and of the reference answer (the label)."""

    index: int
    prompt_ids: list[int]
    label_ids: list[int]


@dataclass
class PredictSet:
    """The rows of one evaluation: all eval datasets together, or one of them (``eval_on_each_dataset``)."""

    name: str
    rows: list[PredictRow]


def load_predict_examples(spec: JobSpec, cache_dir: Path | None) -> tuple[dict[str, list[Example]], list[str]]:
    """Examples to predict for, by set name, and the data layer's warnings."""
    from tunery.engine.data.load import load_examples

    data = spec.data
    section = data.model_copy(update={"dataset": None}) if data.eval_dataset else data
    seed = spec.training.data_seed if spec.training.data_seed is not None else spec.training.seed
    loaded = load_examples(section, "sft", seed, cache_dir=None if cache_dir is None else str(cache_dir))
    warnings = list(loaded.report.warnings)
    if loaded.report.error_count:
        warnings.append(f"{loaded.report.error_count} invalid rows skipped (tunery validate lists them)")
    if loaded.eval_by_dataset:
        return {name: list(part) for name, part in loaded.eval_by_dataset.items()}, warnings
    name = ",".join(data.eval_dataset) if data.eval_dataset else "validation"
    return {name: list(loaded.eval or [])}, warnings


def encode_predict_rows(
    examples: list[Example], tokenizer: Any, template: ChatTemplate, options: EncodeOptions
) -> list[PredictRow]:
    """Prompt and label ids of each example (see the module doc)."""
    pieces: list[list[str]] = []
    for index, example in enumerate(examples):
        check_conversation(example, index)
        system = example.system if example.system is not None else options.default_system
        try:
            pairs = template.render_turns(
                example.messages, system, example.tools, enable_thinking=options.enable_thinking
            )
        except ValueError as err:  # the template's own errors name no row
            where = f"{example.ref.file}, row {example.ref.row}" if example.ref else f"example {index + 1}"
            raise TokenizeError(f"{where}, field 'messages': {err}") from err
        pieces.append([text for pair in pairs for text in pair])
    pool = encode_pool(tokenizer, [text for texts in pieces for text in texts])
    eos = [tokenizer.eos_token_id] if getattr(template, "efficient_eos", False) else []
    rows = []
    cursor = 0
    for index, texts in enumerate(pieces):
        ids = [pool.get(cursor + i) for i in range(len(texts))]
        cursor += len(texts)
        prompt = [token for part in ids[:-1] for token in part]
        label = ids[-1] + eos
        source_len, target_len = infer_seqlen(len(prompt), len(label), options.cutoff_len)
        rows.append(PredictRow(index, prompt[:source_len], label[:target_len]))
    return rows


def encode_options(spec: JobSpec) -> EncodeOptions:
    data = spec.data
    return EncodeOptions(
        cutoff_len=data.cutoff_len, enable_thinking=data.enable_thinking, default_system=data.default_system
    )

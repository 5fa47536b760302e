"""What the TRL-based stages (dpo, kto, rm) share: Tunery's token rows as TRL datasets, TRL configs built from
the spec's TrainingArguments, the method's optimizer, and the frozen reference model."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import torch

from tunery.engine.train.errors import TrainingError, invalid_spec
from tunery.engine.train.stages.labelled_head import use_labelled_head

if TYPE_CHECKING:
    from datasets import Dataset  # type: ignore[import-untyped]
    from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainingArguments

    from tunery.engine.train.methods.base import OptimizerFactory
    from tunery.engine.train.stages.base import StageInputs
    from tunery.spec import JobSpec

ConfigT = TypeVar("ConfigT", bound="TrainingArguments")
Row = Mapping[str, Any]


def derive_config(args: TrainingArguments, config_class: type[ConfigT], **values: Any) -> ConfigT:
    """``args`` (mapped from the spec) as a TRL config plus the stage's own ``values``. Every TrainingArguments
    field is copied, so TRL's different defaults (bf16 on, gradient checkpointing on, logging every 10 steps)
    never apply; ``max_length=None`` and the like come in ``values``."""
    from transformers import TrainingArguments

    copied = {field.name: getattr(args, field.name) for field in dataclasses.fields(TrainingArguments) if field.init}
    try:
        return config_class(**{**copied, **values})
    except ValueError as exc:
        raise invalid_spec("training", str(exc)) from exc


def trl_config(inputs: StageInputs, config_class: type[ConfigT], **values: Any) -> ConfigT:
    """:func:`derive_config` for a stage; TRL switches activation checkpointing off around reference passes and
    back on with the config's kwargs, which must be the ones the model was loaded with."""
    checkpointing = {"use_reentrant": inputs.spec.model.use_reentrant_gc}
    return derive_config(inputs.args, config_class, gradient_checkpointing_kwargs=checkpointing, **values)


def rows_to_dataset(rows: Any, convert: Callable[[Row], dict[str, Any]], what: str) -> Dataset:
    """A map-style dataset of token dicts as a ``datasets.Dataset`` (what TRL trainers take), each row
    passed through ``convert``. Empty data is an error, never a run that trains on nothing."""
    from datasets import Dataset  # type: ignore[import-untyped]

    try:
        count = len(rows)
    except TypeError as exc:
        message = f"{what}: this stage needs the whole tokenized dataset; set streaming: false"
        raise invalid_spec("streaming", message) from exc
    if count == 0:
        raise invalid_spec("dataset", f"{what}: no rows left to train on")
    converted = [convert(rows[index]) for index in range(count)]
    columns = {key: [row[key] for row in converted] for key in converted[0]}
    return Dataset.from_dict(columns)


def eval_to_datasets(eval_rows: Any, convert: Callable[[Row], dict[str, Any]]) -> Any:
    """The eval split(s) as ``datasets.Dataset`` (one, or a dict with ``eval_on_each_dataset``)."""
    if eval_rows is None:
        return None
    if isinstance(eval_rows, Mapping):
        return {name: rows_to_dataset(rows, convert, f"eval dataset {name}") for name, rows in eval_rows.items()}
    return rows_to_dataset(eval_rows, convert, "eval dataset")


class TuneryTRLMixin:
    """Put before a TRL trainer class: the method's optimizer factory (e.g. LoRA+), no model card written
    into output_dir, and no usage ping (the engine never calls home)."""

    optimizer: Any
    model: Any
    args: Any
    optimizer_factory: OptimizerFactory | None = None

    def create_optimizer(self, model: torch.nn.Module | None = None) -> torch.optim.Optimizer:
        target = self.model if model is None else model
        if self.optimizer is None and self.optimizer_factory is not None and target is not None:
            self.optimizer = self.optimizer_factory(target, self.args)
        return super().create_optimizer(model)  # type: ignore[misc, no-any-return]

    def create_model_card(self, *args: Any, **kwargs: Any) -> None:
        return None

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """TRL adds its stage metrics to an evaluation's log as ``eval_<metric>``; with several eval sets
        (``eval_on_each_dataset``) every set's would share that name. Name them like the set's loss:
        ``eval_<set>_<metric>`` (TRL adds the ``eval_``)."""
        stored = getattr(self, "_metrics", None)
        prefix = eval_set_prefix(logs)
        if prefix and isinstance(stored, dict) and isinstance(stored.get("eval"), dict) and not self.model.training:
            stored["eval"] = defaultdict(list, {f"{prefix}{key}": values for key, values in stored["eval"].items()})
        super().log(logs, start_time)  # type: ignore[misc]

    def _send_telemetry(self) -> None:
        return None


def eval_set_prefix(logs: Mapping[str, Any]) -> str:
    """``<set>_`` when ``logs`` are one eval set's of several (``eval_<set>_runtime``), else ``""``."""
    for key in logs:
        if key.startswith("eval_") and key.endswith("_runtime"):
            return key.removeprefix("eval_").removesuffix("runtime")
    return ""


def labelled_heads(trainer: Any, outputs: tuple[str, ...], temperature: float = 1.0) -> None:
    """The policy's and the reference's fused-head calls go through ``labelled_head`` (see there why);
    ``outputs``: the per-token values the trainer reads from the policy's (TRL's own list for its head)."""
    model = trainer.model
    use_labelled_head(model.get_base_model() if hasattr(model, "get_base_model") else model, temperature, outputs)
    if getattr(trainer, "ref_model", None) is not None:
        use_labelled_head(trainer.ref_model, temperature, ("log_probs",))


def drop_reference_adapter(model: Any) -> None:
    """TRL copies a PEFT model's adapter as a frozen "ref" adapter; Tunery's reference is the adapter disabled
    (LLaMA-Factory's rule, no extra weights, nothing extra saved), which TRL uses when "ref" is absent."""
    peft_config = getattr(model, "peft_config", None)
    if isinstance(peft_config, dict) and "ref" in peft_config:
        model.delete_adapter("ref")


def load_reference(spec: JobSpec, tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
    """The frozen reference: ``ref_model`` (with ``ref_model_adapters`` merged) when set, else the trained
    model as loaded (one copy, full/freeze runs only; LoRA disables its adapter instead)."""
    from tunery.engine.train.model import load_frozen_model

    method = spec.method
    if method.ref_model is None:
        return load_frozen_model(spec, tokenizer)
    ref_args = spec.model.model_copy(
        update={"model_name_or_path": method.ref_model, "adapter_name_or_path": None, "gguf_file": None}
    )
    try:
        model = load_frozen_model(spec, tokenizer, ref_args)
    except TrainingError as exc:  # reported against model_name_or_path by the loader: name the right key
        raise TrainingError(exc.code, f"ref_model: {exc.message.split(': ', 1)[-1]}") from exc
    adapters = [path.strip() for path in (method.ref_model_adapters or "").split(",") if path.strip()]
    for path in adapters:
        model = _merge_adapter(model, path)
    return model


def _merge_adapter(model: PreTrainedModel, path: str) -> PreTrainedModel:
    from peft import PeftModel

    try:
        merged: PreTrainedModel = PeftModel.from_pretrained(model, path).merge_and_unload()  # type: ignore[assignment]
    except (OSError, ValueError) as exc:
        raise invalid_spec("ref_model_adapters", f"cannot load adapter {path!r}: {exc}") from exc
    merged.requires_grad_(False)
    merged.eval()
    return merged


def stage_reference(inputs: StageInputs, *, needed: bool) -> PreTrainedModel | None:
    """The reference model to hand TRL: None when none is needed (reference-free losses) or when a LoRA run
    gets its reference by disabling the adapter."""
    spec = inputs.spec
    if not needed:
        return None
    if spec.method.ref_model is None and spec.method.finetuning_type == "lora":
        return None
    return load_reference(spec, inputs.tokenizer)

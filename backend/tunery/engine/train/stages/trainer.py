"""The transformers Trainer the stages share, plus what the methods may ask of it (a custom optimizer)."""

from __future__ import annotations

from typing import Any

import torch
from transformers import Trainer

from tunery.engine.train.methods.base import OptimizerFactory
from tunery.engine.train.sampling import LengthGroupedSampler
from tunery.engine.train.stages.loss import (
    LabelledHead,
    cross_entropy_sum,
    next_token_targets,
    without_padding_mask,
)


class TuneryTrainer(Trainer):
    """``Trainer`` with the method's optimizer factory (e.g. LoRA+), length-grouped sampling over the token
    rows' known lengths, and the causal-LM loss computed only at labelled positions (see ``loss``).

    ``labelled_loss=False`` keeps transformers' plain loss path (every position through the output head).
    """

    def __init__(
        self,
        *args: Any,
        optimizer_factory: OptimizerFactory | None = None,
        labelled_loss: bool = True,
        **kwargs: Any,
    ) -> None:
        self.optimizer_factory = optimizer_factory
        self._flop_params: int | None = None
        super().__init__(*args, **kwargs)
        head = _output_head(self.model) if labelled_loss and not _adds_router_loss(self.model) else None
        self._head: torch.nn.Module | None = head
        self.last_loss_labelled_only = False  # whether the last loss went through the labelled path

    def create_optimizer(self, model: torch.nn.Module | None = None) -> torch.optim.Optimizer:
        target = self.model if model is None else model
        if self.optimizer is None and self.optimizer_factory is not None and target is not None:
            self.optimizer = self.optimizer_factory(target, self.args)
        return super().create_optimizer(model)  # type: ignore[no-any-return]

    def floating_point_ops(self, inputs: dict[str, Any]) -> int:
        """transformers' estimate (6 x tokens x non-embedding parameters) with the parameter count taken once:
        it walks every module, which costs milliseconds a step on adapter models, and cannot change."""
        model: Any = self.model
        main_input = getattr(model, "main_input_name", "input_ids")
        if main_input not in inputs or not hasattr(model, "num_parameters"):
            return 0
        if self._flop_params is None:
            self._flop_params = int(model.num_parameters(exclude_embeddings=True))
        return 6 * int(inputs[main_input].numel()) * self._flop_params

    def _get_train_sampler(self, train_dataset: Any = None) -> torch.utils.data.Sampler[int] | None:
        dataset = self.train_dataset if train_dataset is None else train_dataset
        lengths = getattr(getattr(dataset, "rows", None), "lengths", None)
        if self.args.train_sampling_strategy == "group_by_length" and lengths is not None:
            seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
            return LengthGroupedSampler(lengths, self.args.per_device_train_batch_size, seed)
        return super()._get_train_sampler(train_dataset)  # type: ignore[no-any-return]

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> Any:
        if _uses_sdpa(self.model) and not _adds_router_loss(self.model):
            inputs = without_padding_mask(inputs)
        self.last_loss_labelled_only = False
        if not self._labelled_path(model, inputs, return_outputs):
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        assert self._head is not None
        inputs = dict(inputs)
        mask, targets = next_token_targets(inputs.pop("labels"))
        with LabelledHead(self._head, mask) as selection:
            outputs = model(**inputs)
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        self.last_loss_labelled_only = selection.selected
        if selection.selected:
            loss = cross_entropy_sum(logits[0], targets)
        else:  # the head saw every position (a model calling it differently): same loss, full logits
            flat_mask = mask.reshape(-1)
            loss = cross_entropy_sum(logits.reshape(-1, logits.shape[-1])[flat_mask], targets)
        if self.model_accepts_loss_kwargs and num_items_in_batch is not None:
            loss = loss / num_items_in_batch  # what the model's own loss does with loss kwargs
            if self.args.average_tokens_across_devices:
                loss = loss * (
                    self.accelerator.num_processes // self.get_tp_size() if self.args.n_gpu <= 1 else self.args.n_gpu
                )
        else:
            loss = loss / targets.numel()  # the mean (nan without any label, as cross_entropy's)
        return loss

    def _labelled_path(self, model: torch.nn.Module, inputs: dict[str, Any], return_outputs: bool) -> bool:
        """Whether this loss can be computed on labelled positions only (training, plain causal-LM loss)."""
        if self._head is None or return_outputs or not model.training or "labels" not in inputs:
            return False
        if self.label_smoother is not None or self.compute_loss_func is not None:
            return False
        parallel = getattr(self.accelerator, "parallelism_config", None)
        return not (parallel is not None and getattr(parallel, "sp_enabled", False))


def _output_head(model: Any) -> torch.nn.Module | None:
    get_head = getattr(model, "get_output_embeddings", None)
    head = get_head() if callable(get_head) else None
    return head if isinstance(head, torch.nn.Module) else None


def _config(model: Any) -> Any:
    return getattr(model, "config", None)


def _uses_sdpa(model: Any) -> bool:
    return getattr(_config(model), "_attn_implementation", None) == "sdpa"


def _adds_router_loss(model: Any) -> bool:
    """MoE models add a router loss weighted by the padding mask: keep their mask and their own loss."""
    return bool(getattr(_config(model), "output_router_logits", False))

"""One training run, top to bottom: tokenizer and template, data, model, method, stage trainer, train, save.

``run_training`` never raises: every outcome is an event (finished or failed) and a process exit code.
"""

from __future__ import annotations

import gc
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunery.engine.events import EventSink
from tunery.engine.train.artifacts import save_final_artifacts
from tunery.engine.train.best_model import (
    BestCheckpointCallback,
    EarlyStoppingCallback,
    best_metric_errors,
    best_outcome,
)
from tunery.engine.train.callbacks import EventCallback, RunFacts
from tunery.engine.train.cancel import CancelCallback, Cancelled, CancelRequest
from tunery.engine.train.checkpoints import prepare_output_dir, resolve_resume
from tunery.engine.train.data import (
    DataBuilder,
    TrainingDataLike,
    build_data_checked,
    build_training_data,
    data_warnings,
    load_template,
    num_rows,
)
from tunery.engine.train.errors import classify, exit_code_for
from tunery.engine.train.methods import PreparedModel, apply_method
from tunery.engine.train.model import describe_device, load_model, load_tokenizer
from tunery.engine.train.stages import StageInputs, build_trainer, model_kind
from tunery.engine.train.stages.arguments import build_training_arguments
from tunery.engine.train.throughput import dataset_tokens, effective_tokens_per_second
from tunery.spec import JobSpec
from tunery.spec.events import EXIT_CANCELLED, EXIT_SUCCEEDED, FailedEvent, FinishedEvent, LogEvent

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase, Trainer, TrainerCallback

logger = logging.getLogger(__name__)


@dataclass
class TrainingSession:
    """Everything set up for one run; ``trainer.train`` has not been called yet."""

    spec: JobSpec
    tokenizer: PreTrainedTokenizerBase
    template: Any
    data: TrainingDataLike
    prepared: PreparedModel
    trainer: Trainer
    resume_from: Path | None
    cancel_callback: CancelCallback
    event_callback: EventCallback
    early_stopping: EarlyStoppingCallback | None = None


def run_training(
    spec: JobSpec,
    sink: EventSink,
    *,
    cache_dir: Path | None = None,
    build_data: DataBuilder | None = None,
    callbacks: list[TrainerCallback] | None = None,
) -> int:
    """Train the job; report through ``sink``; return the process exit code (``tunery.spec.events.EXIT_*``)."""
    with CancelRequest() as cancel:
        try:
            session = setup_training(
                spec, sink, cancel, cache_dir=cache_dir, build_data=build_data, callbacks=callbacks
            )
            cancel.raise_if_requested()
            return train_and_save(session, sink)
        except Cancelled:
            sink.emit(FinishedEvent, outcome="cancelled", step=0, output_dir=spec.training.output_dir)
            return EXIT_CANCELLED
        except Exception as exc:
            code, message = classify(exc)
            logger.error("training failed (%s): %s", code, message, exc_info=code == "internal")
            sink.emit(FailedEvent, code=code, message=message)
            return exit_code_for(code)


def setup_training(
    spec: JobSpec,
    sink: EventSink,
    cancel: CancelRequest,
    *,
    cache_dir: Path | None = None,
    build_data: DataBuilder | None = None,
    callbacks: list[TrainerCallback] | None = None,
) -> TrainingSession:
    """Check outputs, load tokenizer, data and model, apply the method, build the stage's trainer."""
    from transformers import PrinterCallback, set_seed

    training = spec.training
    resume_from = resolve_resume(training)
    prepare_output_dir(training, resume_from)
    set_seed(training.seed)

    tokenizer = load_tokenizer(spec.model)
    template = load_template(spec, tokenizer)
    cancel.raise_if_requested()
    data = build_data_checked(build_data or build_training_data, spec, tokenizer, template, cache_dir)
    for warning in data_warnings(data):
        sink.emit(LogEvent, level="warning", message=warning)
    cancel.raise_if_requested()

    loaded = load_model(spec, tokenizer, model_kind(spec.method.stage))
    prepared = apply_method(loaded, spec)
    for note in [f"attention: {loaded.attn_implementation}, dtype: {loaded.compute_dtype}", *prepared.notes]:
        sink.emit(LogEvent, level="info", message=note)
    if spec.model.print_param_status:
        for name, param in prepared.model.named_parameters():
            status = f"{name}: {param.dtype}, {param.device}, trainable={param.requires_grad}"
            sink.emit(LogEvent, level="debug", message=status)

    facts = RunFacts(
        stage=spec.method.stage,
        finetuning_type=spec.method.finetuning_type,
        trainable_params=prepared.trainable_params,
        total_params=prepared.total_params,
        num_train_examples=num_rows(data.train_dataset),
        num_eval_examples=None if data.eval_dataset is None else num_rows(data.eval_dataset),
        device=describe_device(),
        resumed_from=None if resume_from is None else str(resume_from),
    )
    cancel_callback = CancelCallback(cancel)
    event_callback = EventCallback(sink, facts)
    patience = spec.method.early_stopping_steps
    early_stopping = EarlyStoppingCallback(patience) if patience is not None else None
    own: list[TrainerCallback] = [event_callback, BestCheckpointCallback(sink), cancel_callback]
    inputs = StageInputs(
        spec=spec,
        prepared=prepared,
        tokenizer=tokenizer,
        data=data,
        args=build_training_arguments(spec),
        callbacks=[*own, *([early_stopping] if early_stopping else []), *(callbacks or [])],
        template=template,
    )
    trainer = build_trainer(inputs)
    trainer.remove_callback(PrinterCallback)  # it prints logs to stdout, where the event stream may go
    if training.logging_dir:
        set_tensorboard_dir(trainer, training.logging_dir)
    return TrainingSession(
        spec, tokenizer, template, data, prepared, trainer, resume_from, cancel_callback, event_callback, early_stopping
    )


def set_tensorboard_dir(trainer: Trainer, logging_dir: str) -> None:
    """``logging_dir``: where TensorBoard logs go (transformers 5 dropped the argument; its callback reads
    ``TENSORBOARD_LOGGING_DIR``, set here on the callback itself rather than in the process environment)."""
    from transformers.integrations import TensorBoardCallback

    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, TensorBoardCallback):
            callback.logging_dir = os.path.expanduser(logging_dir)


def train_and_save(session: TrainingSession, sink: EventSink) -> int:
    """Run the training loop (resuming if asked); on cancel keep the checkpoint, else save the artifacts."""
    trainer, spec = session.trainer, session.spec
    output_dir = spec.training.output_dir
    resume = None if session.resume_from is None else str(session.resume_from)
    # Everything set up so far (imports, model, data) lives as long as training: keep the cycle collector
    # from rescanning it on every full collection (transformers runs one as training starts).
    gc.freeze()
    try:
        with best_metric_errors():
            result = trainer.train(resume_from_checkpoint=resume)
    finally:
        gc.unfreeze()
    state = trainer.state
    best = best_outcome(state, session.early_stopping)

    if session.cancel_callback.stopped_at is not None and state.global_step < state.max_steps:
        checkpoint = Path(output_dir) / f"checkpoint-{state.global_step}"
        sink.emit(
            FinishedEvent,
            outcome="cancelled",
            step=state.global_step,
            metrics=dict(result.metrics),
            output_dir=output_dir,
            checkpoint=str(checkpoint),
            best_checkpoint=best.best_checkpoint,
        )
        return EXIT_CANCELLED

    train_metrics = dict(result.metrics)
    if spec.method.include_effective_tokens_per_second:
        train_metrics.update(_effective_tokens(session, state, train_metrics))
    metrics = save_final_artifacts(
        trainer, spec, session.tokenizer, session.template, train_metrics, session.prepared.save_weights
    )
    sink.emit(
        FinishedEvent,
        outcome="succeeded",
        step=state.global_step,
        metrics=metrics,
        output_dir=output_dir,
        best_checkpoint=best.best_checkpoint,
        stopped_early=best.stopped_early,
    )
    return EXIT_SUCCEEDED


def _effective_tokens(session: TrainingSession, state: Any, metrics: dict[str, Any]) -> dict[str, float]:
    """LF's ``effective_tokens_per_sec`` over this run's epochs (see ``tunery.engine.train.throughput``)."""
    events = session.event_callback
    value = effective_tokens_per_second(
        dataset_tokens(session.data),
        float(state.epoch or 0.0) - events.start_epoch,
        float(metrics.get("train_runtime") or 0.0),
        tokens_seen=(state.num_input_tokens_seen or 0) - events.start_tokens,
    )
    return {} if value is None else {"effective_tokens_per_sec": round(value, 2)}

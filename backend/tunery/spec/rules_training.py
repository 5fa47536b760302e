"""Cross-field rules of evaluation during training: early stopping, the best model (``metric_for_best_model``,
``greater_is_better``, ``load_best_model_at_end``), several eval sets, effective tokens per second; and where
the training logs go (``logging_dir``). Registered
into ``tunery.spec.rules.RULES`` on import (rules.py imports this module, after ``_validation_split`` has filled
``eval_steps``).

The engine honours these keys as transformers and LLaMA-Factory do (``tunery.engine.train.best_model``); the
rules give a clear message, naming the key, for what transformers would refuse with its own wording, ignore,
or fail on only at the first evaluation (an unknown metric name)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tunery.spec.errors import SpecProblem
from tunery.spec.rules import rule
from tunery.spec.stages import RL_STAGES, STAGES

if TYPE_CHECKING:
    from tunery.spec.job import JobSpec

#: Keys of evaluation during training that need the eval loop of the token-level stages (not ppo/grpo).
EVAL_LOOP_KEYS = ("early_stopping_steps", "load_best_model_at_end", "metric_for_best_model", "greater_is_better")
#: LR schedulers that step on the best-model metric (transformers defaults it to loss for them).
METRIC_SCHEDULERS = ("reduce_lr_on_plateau",)


def has_eval_split(spec: JobSpec) -> bool:
    """Whether the run has held-out rows to evaluate on (val_size or eval_dataset)."""
    return spec.data.val_size > 0 or bool(spec.data.eval_dataset)


def eval_set_names(spec: JobSpec) -> list[str]:
    """The eval sets reported separately (``eval_on_each_dataset``: one per eval dataset); empty when merged."""
    data = spec.data
    return list(data.eval_dataset or []) if data.eval_on_each_dataset else []


def stage_eval_metrics(spec: JobSpec) -> tuple[str, ...]:
    """Metric names (without ``eval_``) one evaluation of the stage reports; ``prefix/`` entries stand for a
    group (``logps/`` = ``logps/chosen``, ...). From the stage catalog; sft's accuracy needs compute_accuracy."""
    stage = spec.method.stage
    metrics = [name for name in STAGES[stage].metrics if stage != "sft" or spec.method.compute_accuracy]
    return ("loss", *metrics)


def best_metric_name(spec: JobSpec) -> str | None:
    """``metric_for_best_model`` as the engine uses it: set, or ``loss`` when early stopping, the best model at
    the end or a metric-driven scheduler needs one (transformers' default); None when nothing compares."""
    training = spec.training
    if training.metric_for_best_model:
        return training.metric_for_best_model
    wanted = (
        spec.method.early_stopping_steps is not None
        or training.load_best_model_at_end
        or training.lr_scheduler_type in METRIC_SCHEDULERS
    )
    return "loss" if wanted else None


def _known(metric: str, names: tuple[str, ...]) -> bool:
    return any(metric == name or (name.endswith("/") and metric.startswith(name) and metric != name) for name in names)


def metric_problem(spec: JobSpec, metric: str) -> str | None:
    """Why ``metric`` cannot be compared across this run's evaluations, or None when it can."""
    names = stage_eval_metrics(spec)
    bare = metric.removeprefix("eval_")
    sets = eval_set_names(spec)
    listed = ", ".join(f"eval_{name}" for name in names)
    if sets:
        for name in sorted(sets, key=len, reverse=True):
            if bare.startswith(f"{name}_") and _known(bare[len(name) + 1 :], names):
                return None
        example = f"eval_{sets[0]}_loss"
        return (
            f"{metric!r} is not reported: with eval_on_each_dataset each eval set has its own metrics "
            f"(eval_<dataset>_<metric>, e.g. {example}); name one of the sets {', '.join(sets)} "
            f"and one of {listed}"
        )
    if _known(bare, names):
        return None
    hint = ""
    if spec.method.stage == "sft" and bare == "accuracy":
        hint = " (eval_accuracy is reported with compute_accuracy: true)"
    return f"{metric!r} is not reported by stage {spec.method.stage}; choose one of {listed}{hint}"


@rule
def _eval_loop_keys(spec: JobSpec) -> list[SpecProblem]:
    """RL stages have no eval loop to compare checkpoints with; their effective tokens are generated ones."""
    stage = spec.method.stage
    if stage not in RL_STAGES:
        return []
    training, method = spec.training, spec.method
    present = {
        "early_stopping_steps": method.early_stopping_steps is not None,
        "load_best_model_at_end": training.load_best_model_at_end,
        "metric_for_best_model": training.metric_for_best_model is not None,
        "greater_is_better": training.greater_is_better is not None,
    }
    others = ", ".join(name for name in STAGES if name not in RL_STAGES)
    problems = [
        SpecProblem(key, f"does not apply to stage {stage}: it compares evaluations of the eval loop of {others}")
        for key, set_ in present.items()
        if set_
    ]
    if method.include_effective_tokens_per_second:
        problems.append(
            SpecProblem(
                "include_effective_tokens_per_second",
                f"does not apply to stage {stage}: it counts the tokens of the training rows, and stage {stage} "
                "trains on answers it generates",
            )
        )
    return problems


@rule
def _early_stopping(spec: JobSpec) -> list[SpecProblem]:
    patience = spec.method.early_stopping_steps
    if patience is None or spec.method.stage in RL_STAGES:
        return []
    if patience < 1:
        return [SpecProblem("early_stopping_steps", "must be at least 1 (evaluations without improvement)")]
    missing = []
    if not has_eval_split(spec):
        missing.append("an eval split to watch (set val_size or eval_dataset)")
    if spec.training.eval_strategy == "no":
        missing.append("evaluations to count (set eval_strategy to steps, with eval_steps, or epoch)")
    if missing:
        return [SpecProblem("early_stopping_steps", f"needs {' and '.join(missing)}")]
    return []


@rule
def _best_model(spec: JobSpec) -> list[SpecProblem]:
    training = spec.training
    if spec.method.stage in RL_STAGES:
        return []
    problems = []
    evaluates = has_eval_split(spec) and training.eval_strategy != "no"
    if training.load_best_model_at_end:
        problems.extend(_load_best_problems(spec))
    metric = best_metric_name(spec)
    if training.metric_for_best_model is not None and not evaluates:
        problems.append(
            SpecProblem(
                "metric_for_best_model",
                "compares evaluations during training: set eval_strategy (steps or epoch) and val_size or eval_dataset",
            )
        )
    elif metric is not None and evaluates:
        problem = metric_problem(spec, metric)
        if problem is not None:
            if training.metric_for_best_model is None:  # the default, loss, with several eval sets
                problem = (
                    f"is needed with eval_on_each_dataset (each eval set reports its own loss): name the metric "
                    f"to compare, e.g. eval_{eval_set_names(spec)[0]}_loss"
                )
            problems.append(SpecProblem("metric_for_best_model", problem))
    if training.greater_is_better is not None and metric is None:
        problems.append(
            SpecProblem(
                "greater_is_better",
                "only applies with metric_for_best_model (or early_stopping_steps / load_best_model_at_end, "
                "which compare eval loss by default)",
            )
        )
    return problems


@rule
def _logging_dir(spec: JobSpec) -> list[SpecProblem]:
    """transformers writes into logging_dir only for TensorBoard."""
    training = spec.training
    if training.logging_dir and "tensorboard" not in training.report_to:
        return [SpecProblem("logging_dir", "is where TensorBoard logs go: add tensorboard to report_to, or remove it")]
    return []


def _load_best_problems(spec: JobSpec) -> list[SpecProblem]:
    """transformers' own checks, said first and naming our keys: the best model is loaded from a checkpoint
    saved right after its evaluation."""
    training = spec.training
    key = "load_best_model_at_end"
    if not has_eval_split(spec) or training.eval_strategy == "no":
        return [
            SpecProblem(
                key,
                "needs evaluations during training: set eval_strategy (steps or epoch) and val_size or eval_dataset",
            )
        ]
    if training.save_strategy != training.eval_strategy:
        return [
            SpecProblem(
                key,
                f"loads the best checkpoint, so checkpoints must follow evaluations: save_strategy "
                f"({training.save_strategy}) must equal eval_strategy ({training.eval_strategy})",
            )
        ]
    evals = training.eval_steps
    if training.eval_strategy == "steps" and evals is not None and not _is_multiple(training.save_steps, evals):
        return [
            SpecProblem(
                key,
                f"loads the best checkpoint, so every save must follow an evaluation: save_steps "
                f"({training.save_steps:g}) must be a multiple of eval_steps ({evals:g})",
            )
        ]
    return []


def _is_multiple(save_steps: float, eval_steps: float) -> bool:
    """transformers' test: whole steps divide; ratios (< 1) divide in millionths; mixing the two never does."""
    if save_steps >= 1 and eval_steps >= 1:
        return int(save_steps) % int(eval_steps) == 0
    if save_steps < 1 and eval_steps < 1:
        return round(save_steps * 1_000_000) % round(eval_steps * 1_000_000) == 0
    return False

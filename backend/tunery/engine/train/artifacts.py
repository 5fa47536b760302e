"""What a finished run leaves in output_dir: weights, tokenizer, LF-style results, state and loss plots."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunery.engine.train.data import apply_template
from tunery.engine.train.reward_model import RewardModelInfo, write_reward_info
from tunery.spec.stages import STAGES

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase, Trainer

    from tunery.engine.train.methods.base import WeightSaver
    from tunery.spec import JobSpec


def save_final_artifacts(
    trainer: Trainer,
    spec: JobSpec,
    tokenizer: PreTrainedTokenizerBase,
    template: Any,
    metrics: dict[str, Any],
    save_weights: WeightSaver | None = None,
) -> dict[str, Any]:
    """Save weights (adapter for LoRA), tokenizer with chat template, train/eval results, state, plots.
    Returns all metrics (train and, when evaluated, eval)."""
    output_dir = Path(spec.training.output_dir)
    model = trainer.model
    config = getattr(model, "config", None)
    if config is not None and not hasattr(model, "peft_config"):
        config.use_cache = spec.model.use_cache  # ready for generation once loaded
    if save_weights is not None and model is not None:
        save_weights(model, output_dir)
    else:
        trainer.save_model(str(output_dir))
    apply_template(template, tokenizer)
    tokenizer.save_pretrained(str(output_dir))
    if STAGES[spec.method.stage].reward_model:  # what tunery.engine.train.reward_model needs to load it
        write_reward_info(
            output_dir,
            RewardModelInfo(
                base_model=spec.model.model_name_or_path,
                finetuning_type=spec.method.finetuning_type,
                template=getattr(template, "name", None),
            ),
        )

    trainer.save_metrics("train", metrics)  # train_results.json + all_results.json
    trainer.save_state()  # trainer_state.json
    everything = dict(metrics)
    eval_losses = eval_loss_keys(trainer.eval_dataset)
    if spec.training.do_eval and trainer.eval_dataset is not None:
        eval_metrics = trainer.evaluate(metric_key_prefix="eval")
        if spec.method.stage in ("pt", "sft"):  # a language-modelling loss: its perplexity, per eval set
            for key in eval_losses:
                if key in eval_metrics:
                    eval_metrics[key.removesuffix("loss") + "perplexity"] = _perplexity(eval_metrics[key])
        trainer.save_metrics("eval", eval_metrics)
        everything.update(eval_metrics)
    if spec.method.plot_loss:  # reward: ppo, grpo (LF)
        plot_loss(output_dir, trainer.state.log_history, keys=("loss", *eval_losses, "reward"))
    return everything


def eval_loss_keys(eval_dataset: Any) -> tuple[str, ...]:
    """``eval_loss``, or one ``eval_<name>_loss`` per eval set with ``eval_on_each_dataset`` (transformers'
    and LF's names)."""
    if isinstance(eval_dataset, dict):
        return tuple(f"eval_{name}_loss" for name in eval_dataset)
    return ("eval_loss",)


def plot_loss(output_dir: Path, log_history: list[dict[str, Any]], keys: tuple[str, ...] = ("loss",)) -> list[Path]:
    """``training_<key>.png`` for each key logged at least once (raw and smoothed curves, like LF)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for key in keys:
        points = [(entry["step"], entry[key]) for entry in log_history if key in entry and "step" in entry]
        if not points:
            continue
        steps, values = zip(*points, strict=True)
        figure = plt.figure()
        plt.plot(steps, values, color="#1f77b4", alpha=0.4, label="original")
        plt.plot(steps, smooth(list(values)), color="#1f77b4", label="smoothed")
        plt.title(f"{key} of {output_dir}")
        plt.xlabel("step")
        plt.ylabel(key)
        plt.legend()
        path = output_dir / f"training_{key.replace('/', '_')}.png"
        figure.savefig(path, format="png", dpi=100)
        plt.close(figure)
        written.append(path)
    return written


def smooth(values: list[float]) -> list[float]:
    """Exponential moving average, smoothing more when there are more points."""
    if not values:
        return []
    weight = 1.8 * (1 / (1 + math.exp(-0.05 * len(values))) - 0.5)
    smoothed, last = [], values[0]
    for value in values:
        last = last * weight + (1 - weight) * value
        smoothed.append(last)
    return smoothed


def _perplexity(loss: float) -> float:
    try:
        return math.exp(loss)
    except OverflowError:
        return float("inf")

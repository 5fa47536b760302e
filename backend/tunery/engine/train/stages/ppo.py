"""PPO with a reward model, as LLaMA-Factory's ``ppo`` stage trains it (TRL 0.9's PPOTrainer, which TRL 1.x
dropped: the loop is written out here, the arithmetic in ``ppo_core``).

One training step is one PPO iteration, top to bottom (``PPOTrainer.training_step``):

1. rollout: sample an answer for each of ``per_device_train_batch_size x gradient_accumulation_steps x
   ppo_buffer_size`` prompts with the policy;
2. rewards: the reward model's score of each answer (``ppo_score_norm``: normalised by running moments),
   minus ``kl_coef x (log pi - log pi_ref)`` at every answer token;
3. GAE advantages and returns from the value head's values;
4. ``ppo_epochs`` passes over the rollout in minibatches of ``per_device_train_batch_size``: clipped policy
   loss + ``vf_coef x`` clipped value loss, an optimizer step every ``gradient_accumulation_steps``
   minibatches (the last one is left to the Trainer, which clips, steps and advances the schedule);
5. the adaptive KL controller moves ``kl_coef`` towards ``ppo_target``.

The reference is the policy with its adapter disabled (LoRA) or a frozen copy (full/freeze; ``ref_model``
when given). Running inside a transformers ``Trainer`` keeps checkpoints (adapter or model plus
``value_head.safetensors`` and ``ppo_state.json``), resume, cancel and progress events like every stage.
"""

from __future__ import annotations

import json
import logging
import math
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from tunery.engine.train.rewards.scoring import RewardSource, load_reward_source
from tunery.engine.train.stages import ppo_core
from tunery.engine.train.stages.base import StageInputs, register_stage
from tunery.engine.train.stages.generation import generation_config, stop_token_ids
from tunery.engine.train.stages.ppo_rollout import PolicyWithValueHead, forward_answers, pack, sample_answers
from tunery.engine.train.stages.preference import derive_config, load_reference
from tunery.engine.train.stages.trainer import TuneryTrainer

if TYPE_CHECKING:
    from transformers import GenerationConfig, Trainer

    from tunery.spec import JobSpec

logger = logging.getLogger(__name__)

PPO_STATE_FILE = "ppo_state.json"


@register_stage("ppo")
def build_ppo(inputs: StageInputs) -> Trainer:
    spec, tokenizer = inputs.spec, inputs.tokenizer
    reward = load_reward_source(spec, tokenizer)
    model = PolicyWithValueHead(inputs.prepared.model)
    adapters = spec.model.adapter_name_or_path or []
    if model.load_value_head(adapters[-1] if adapters else spec.model.model_name_or_path):
        logger.info("value head loaded from the model being continued")
    reference: torch.nn.Module | None = None
    if not model.is_peft or spec.method.ref_model:  # else: the policy with its adapter disabled
        frozen: torch.nn.Module = load_reference(spec, tokenizer)
        reference = frozen.to(inputs.args.device)
    t = spec.training
    rollout_size = t.per_device_train_batch_size * t.gradient_accumulation_steps * spec.method.ppo_buffer_size
    # The Trainer sees one rollout per step; PPO's own minibatching and accumulation happen inside the step.
    args = derive_config(
        inputs.args, type(inputs.args), per_device_train_batch_size=rollout_size, gradient_accumulation_steps=1
    )
    stops = stop_token_ids(tokenizer, inputs.template)
    return PPOTrainer(
        model=model,
        args=args,
        train_dataset=inputs.data.train_dataset,
        data_collator=PromptCollator(int(tokenizer.pad_token_id)),
        processing_class=tokenizer,
        callbacks=list(inputs.callbacks),
        optimizer_factory=inputs.prepared.optimizer_factory,
        labelled_loss=False,
        spec=spec,
        reward=reward,
        reference=reference,
        generation=generation_config(spec, tokenizer, stops),
        stops=stops,
    )


class PromptCollator:
    """Left-padded prompt ids (what generation takes) and the prompts as lists."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        prompts = [list(row["prompt_ids"]) for row in rows]
        width = max(len(ids) for ids in prompts)
        return {
            "input_ids": torch.tensor([[self.pad_id] * (width - len(ids)) + ids for ids in prompts]),
            "attention_mask": torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in prompts]),
        }


class PPOTrainer(TuneryTrainer):
    """A transformers Trainer whose training step is one PPO iteration (checkpoints, resume, cancel, logging
    and the schedule are the Trainer's)."""

    model: PolicyWithValueHead

    def __init__(
        self,
        *args: Any,
        spec: JobSpec,
        reward: RewardSource,
        reference: torch.nn.Module | None,
        generation: GenerationConfig,
        stops: set[int],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        method, training = spec.method, spec.training
        self.reward = reward
        self.reference = reference
        self.generation = generation
        self.stops = stops
        self.minibatch = training.per_device_train_batch_size
        self.accumulation = training.gradient_accumulation_steps
        self.ppo_epochs = method.ppo_epochs
        self.whiten_rewards = method.ppo_whiten_rewards
        self.kl_ctl = ppo_core.AdaptiveKLController(method.ppo_target)
        self.score_moments = ppo_core.RunningMoments() if method.ppo_score_norm else None
        self._metrics: dict[str, list[float]] = defaultdict(list)

    # ---- one PPO iteration ----

    def training_step(
        self, model: torch.nn.Module, inputs: dict[str, Any], num_items_in_batch: Any = None
    ) -> torch.Tensor:
        policy = self.model
        # 1. rollout: one sampled answer per prompt
        rows = zip(inputs["input_ids"], inputs["attention_mask"], strict=True)
        prompts = [ids[mask.bool()].tolist() for ids, mask in rows]
        policy.eval()
        with self.accelerator.autocast():  # mixed precision: trained weights fp32, frozen ones bf16/fp16
            answers = sample_answers(
                policy.policy, prompts, self.generation, self.stops, int(self.generation.pad_token_id), self.minibatch
            )
        # 2. rewards: the reward model's score, and the log-probabilities of policy and reference
        scores = torch.tensor(self.reward.score(prompts, answers), dtype=torch.float32)
        batch = pack(prompts, answers, int(self.generation.pad_token_id), self.args.device)
        self.state.num_input_tokens_seen += sum(len(answer) for answer in answers)  # prompts: by the Trainer

        with torch.no_grad():
            old_logprobs, old_values = model(batch)
            assert old_values is not None
            if self.reference is None:
                with policy.reference_context():
                    ref_logprobs, _ = model(batch, with_values=False)
            else:
                with self.accelerator.autocast():
                    ref_logprobs, _ = forward_answers(self.reference, batch)
        mask = batch.response_mask
        normed = scores if self.score_moments is None else self.score_moments.normalise(scores)
        kl_coef = self.kl_ctl.value
        rewards, kl = ppo_core.compute_rewards(normed.to(mask.device), old_logprobs, ref_logprobs, mask, kl_coef)
        # 3. GAE advantages and returns
        advantages, returns = ppo_core.compute_advantages(old_values, rewards, mask, whiten_rewards=self.whiten_rewards)
        # 4. clipped policy and value losses, ppo_epochs passes in minibatches
        policy.train()
        losses = self._optimise(model, batch, old_logprobs, old_values, advantages, returns)
        # 5. the KL coefficient moves towards ppo_target
        mean_kl = float(kl.sum(dim=1).mean())
        self.kl_ctl.update(mean_kl, len(prompts))
        self._record(
            {
                "reward": float(scores.mean()),
                "reward_std": float(scores.std()) if len(scores) > 1 else 0.0,
                "kl": mean_kl,
                "completion_length": float(mask.sum(dim=1).mean()),
                "ppo/kl_coef": kl_coef,
                "ppo/returns_mean": float(ppo_core.masked_mean(returns, mask)),
                "ppo/values_mean": float(ppo_core.masked_mean(old_values, mask)),
            }
        )
        return losses.to(self.args.device)

    def _optimise(
        self,
        model: torch.nn.Module,
        batch: Any,
        old_logprobs: torch.Tensor,
        old_values: torch.Tensor,
        advantages: torch.Tensor,
        returns: torch.Tensor,
    ) -> torch.Tensor:
        """``ppo_epochs`` shuffled passes in minibatches; returns the mean total loss."""
        rows = old_logprobs.shape[0]
        group = self.minibatch * self.accumulation  # rows per optimizer step
        updates = [
            [order[m : m + self.minibatch] for m in range(start, min(start + group, rows), self.minibatch)]
            for order in (torch.randperm(rows, device=old_logprobs.device) for _ in range(self.ppo_epochs))
            for start in range(0, rows, group)
        ]
        totals = []
        for number, minibatches in enumerate(updates):
            for index in minibatches:
                part = batch.rows(index)
                logprobs, values = model(part)
                assert values is not None
                loss = ppo_core.ppo_loss(
                    logprobs,
                    values,
                    old_logprobs[index],
                    old_values[index],
                    advantages[index],
                    returns[index],
                    part.response_mask,
                )
                self.accelerator.backward(loss.total / len(minibatches))
                totals.append(float(loss.total.detach()))
                self._record(
                    {
                        "policy_loss": float(loss.policy.detach()),
                        "value_loss": float(loss.value.detach()),
                        "ppo/clipfrac": float(loss.policy_clipfrac),
                        "ppo/value_clipfrac": float(loss.value_clipfrac),
                        "ppo/approx_kl": float(loss.approx_kl),
                        "ppo/ratio": float(loss.ratio),
                    }
                )
            if number < len(updates) - 1:  # the last update is the Trainer's (clip, step, schedule, zero)
                optimizer: Any = self.optimizer
                if self.args.max_grad_norm and self.args.max_grad_norm > 0:
                    self.accelerator.clip_grad_norm_(self.model.parameters(), self.args.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
        return torch.tensor(sum(totals) / max(1, len(totals)))

    # ---- metrics ----

    def _record(self, values: dict[str, float]) -> None:
        for key, value in values.items():
            if math.isfinite(value):
                self._metrics[key].append(value)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Training logs carry the mean of each PPO metric since the last log."""
        if "loss" in logs:
            logs.update({key: sum(values) / len(values) for key, values in self._metrics.items() if values})
            self._metrics.clear()
        super().log(logs, start_time)

    # ---- checkpoints ----

    def _save(self, output_dir: str | None = None, state_dict: dict[str, Any] | None = None) -> None:
        folder = output_dir or str(self.args.output_dir)
        if not self.args.should_save:
            return
        Path(folder).mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(folder)
        if self.processing_class is not None:
            self.processing_class.save_pretrained(folder)
        torch.save(self.args, str(Path(folder) / "training_args.bin"))

    def _save_checkpoint(self, model: torch.nn.Module, trial: Any) -> None:
        # written first: trainer_state.json, written last by transformers, marks the checkpoint complete
        folder = Path(self._get_output_dir(trial=trial)) / f"checkpoint-{self.state.global_step}"
        folder.mkdir(parents=True, exist_ok=True)
        state: dict[str, Any] = {"kl_coef": self.kl_ctl.value}
        if self.score_moments is not None:
            state["score_moments"] = vars(self.score_moments)
        (folder / PPO_STATE_FILE).write_text(json.dumps(state), encoding="utf-8")
        super()._save_checkpoint(model, trial)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: torch.nn.Module | None = None) -> None:
        super()._load_from_checkpoint(resume_from_checkpoint, model=self.model.policy)
        self.model.load_value_head(resume_from_checkpoint)
        path = Path(resume_from_checkpoint) / PPO_STATE_FILE
        if path.is_file():
            state = json.loads(path.read_text(encoding="utf-8"))
            self.kl_ctl.value = float(state["kl_coef"])
            if self.score_moments is not None and "score_moments" in state:
                vars(self.score_moments).update(state["score_moments"])

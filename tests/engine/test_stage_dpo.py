"""Stage dpo: loss parity with the definitions, learning a synthetic preference (DPO, ORPO, SimPO), the
reference model per method, the demo data through the runner, resume and cancel, and the refused keys."""

from __future__ import annotations

import io
import os
import signal
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from transformers import TrainerCallback

from tests.engine.pref_support import (
    eval_before_and_after,
    finished,
    one_thread,  # noqa: F401 - an autouse fixture
    progress_metrics,
    row_builder,
    run_stage,
)
from tests.support.train_data import tiny_spec
from tunery.engine.events import EventSink
from tunery.engine.train.cancel import CancelRequest
from tunery.engine.train.runner import setup_training
from tunery.engine.train.stages.pref_losses import PreferenceLoss
from tunery.spec import JobSpec
from tunery.spec.checkpoints import is_complete_checkpoint
from tunery.spec.errors import SpecError
from tunery.spec.events import (
    EXIT_CANCELLED,
    EXIT_INVALID,
    EXIT_SUCCEEDED,
    FailedEvent,
    ProgressEvent,
    StartedEvent,
)

PAIR_METRICS = {
    "rewards/chosen",
    "rewards/rejected",
    "rewards/accuracies",
    "rewards/margins",
    "logps/chosen",
    "logps/rejected",
}


def session_for(model_dir: Path, out: Path, **keys: Any) -> Any:
    spec = tiny_spec(model_dir, out, stage="dpo", **keys)
    with CancelRequest() as cancel:
        return setup_training(spec, EventSink(io.StringIO()), cancel, build_data=row_builder("pairwise", 8))


def completion_logps(model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed log-probs of each completion, its length) from the model's full logits."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    logps = torch.log_softmax(logits[:, :-1].double(), dim=-1)
    token_logps = logps.gather(-1, batch["input_ids"][:, 1:, None]).squeeze(-1)
    mask = batch["completion_mask"][:, 1:].double()
    return (token_logps * mask).sum(1), mask.sum(1)


def test_first_step_losses_equal_their_definitions(tiny_llama: Path, tmp_path: Path) -> None:
    beta = 0.5
    trainer = session_for(tiny_llama, tmp_path / "out", pref_beta=beta).trainer
    model = trainer.model
    torch.manual_seed(0)
    for name, param in model.named_parameters():  # a policy that differs from the reference (adapter off)
        if "lora_B" in name:
            param.data.normal_(0, 0.05)
    model.train()
    batch = trainer.data_collator([trainer.train_dataset[index] for index in range(4)])
    with torch.no_grad():
        policy, lengths = completion_logps(model, batch)
        with model.disable_adapter():
            reference, _ = completion_logps(model, batch)
    chosen, rejected = policy.chunk(2)
    ref_chosen, ref_rejected = reference.chunk(2)
    logits = beta * ((chosen - ref_chosen) - (rejected - ref_rejected))
    assert logits.abs().max() > 1e-3  # the check below is not the trivial log(2)

    sigmoid = trainer.compute_loss(model, batch)  # TRL's own loss
    assert float(sigmoid) == pytest.approx(float((-F.logsigmoid(logits)).mean()), abs=1e-5)

    trainer.preference = replace(trainer.preference, label_smoothing=0.2)  # conservative DPO, computed here
    smoothed = -0.8 * F.logsigmoid(logits) - 0.2 * F.logsigmoid(-logits)
    assert float(trainer.compute_loss(model, batch)) == pytest.approx(float(smoothed.mean()), abs=1e-5)

    avg_chosen, avg_rejected = (policy / lengths).chunk(2)
    trainer.preference = PreferenceLoss("orpo", beta=beta)
    log_odds = (avg_chosen - avg_rejected) - (
        torch.log1p(-torch.exp(avg_chosen)) - torch.log1p(-torch.exp(avg_rejected))
    )
    orpo = -avg_chosen - beta * F.logsigmoid(log_odds)
    assert float(trainer.compute_loss(model, batch)) == pytest.approx(float(orpo.mean()), abs=1e-5)

    trainer.preference = PreferenceLoss("simpo", beta=beta, simpo_gamma=0.3, ftx=0.7)
    simpo = -F.logsigmoid(beta * (avg_chosen - avg_rejected) - 0.3) + 0.7 * -avg_chosen
    assert float(trainer.compute_loss(model, batch)) == pytest.approx(float(simpo.mean()), abs=1e-5)


@pytest.mark.parametrize("loss", ["sigmoid", "orpo", "simpo"])
def test_preference_on_a_synthetic_task_is_learned(tiny_llama: Path, tmp_path: Path, loss: str) -> None:
    before, after = eval_before_and_after(
        tiny_llama,
        tmp_path / "out",
        row_builder("pairwise", 16, eval_rows=6),
        stage="dpo",
        pref_loss=loss,
        max_steps=8,
        per_device_eval_batch_size=6,
    )
    assert after["eval_rewards/accuracies"] > 0.5
    assert after["eval_rewards/margins"] > before["eval_rewards/margins"] + 0.05
    assert after["eval_loss"] < before["eval_loss"]


def test_reference_is_the_disabled_adapter_or_one_frozen_copy(tiny_llama: Path, tmp_path: Path) -> None:
    lora = session_for(tiny_llama, tmp_path / "lora").trainer
    assert lora.ref_model is None and set(lora.model.peft_config) == {"default"}  # no "ref" adapter copy
    full = session_for(tiny_llama, tmp_path / "full", finetuning_type="full").trainer
    assert full.ref_model is not None and full.ref_model is not full.model
    assert not any(param.requires_grad for param in full.ref_model.parameters())
    for name, param in full.ref_model.state_dict().items():
        assert torch.equal(param, full.model.state_dict()[name])
    orpo = session_for(tiny_llama, tmp_path / "orpo", finetuning_type="full", pref_loss="orpo").trainer
    assert orpo.ref_model is None  # reference-free: nothing loaded
    other = session_for(tiny_llama, tmp_path / "ref", ref_model=str(tiny_llama)).trainer
    assert other.ref_model is not None  # an explicit reference replaces the disabled adapter


def test_ref_model_adapters_are_merged_into_the_reference(tiny_llama: Path, tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    adapted = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_llama), LoraConfig(r=4, target_modules=["q_proj"])
    )
    for name, param in adapted.named_parameters():
        if "lora_B" in name:
            param.data.normal_(0, 0.1)
    adapted.save_pretrained(str(tmp_path / "adapter"))
    trainer = session_for(
        tiny_llama, tmp_path / "out", ref_model=str(tiny_llama), ref_model_adapters=str(tmp_path / "adapter")
    ).trainer
    merged = trainer.ref_model.state_dict()
    base = AutoModelForCausalLM.from_pretrained(tiny_llama).state_dict()
    query = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.allclose(merged[query], base[query])  # the adapter is in the reference
    assert torch.equal(merged["model.layers.0.self_attn.k_proj.weight"], base["model.layers.0.self_attn.k_proj.weight"])

    code, events = run_stage(tiny_llama, tmp_path / "bad", row_builder("pairwise"), stage="dpo", ref_model="/no/model")
    failed = events[-1]
    assert code == EXIT_INVALID and isinstance(failed, FailedEvent) and failed.message.startswith("ref_model: ")


def test_dpo_trains_on_the_demo_data_through_the_runner(tiny_llama: Path, tmp_path: Path, demo_data_dir: Path) -> None:
    out = tmp_path / "out"
    code, events = run_stage(
        tiny_llama,
        out,
        None,
        stage="dpo",
        dataset="dpo_en_demo",
        dataset_dir=str(demo_data_dir),
        template="llama3",
        cutoff_len=64,
        max_samples=8,
        max_steps=2,
        pref_ftx=0.1,
    )
    assert code == EXIT_SUCCEEDED, finished(events)
    metrics = progress_metrics(events)
    assert len(metrics) == 2 and set(metrics[0]) >= PAIR_METRICS
    for name in ("adapter_model.safetensors", "tokenizer.json", "trainer_log.jsonl", "all_results.json"):
        assert (out / name).is_file(), name
    assert not (out / "ref").exists()  # no reference adapter saved next to the trained one


@pytest.mark.parametrize(("stage", "rows"), [("dpo", "pairwise"), ("rm", "pairwise"), ("kto", "kto")])
def test_preference_stages_resume_from_a_checkpoint_with_the_same_losses(
    tiny_llama: Path, tmp_path: Path, stage: str, rows: str
) -> None:
    out = tmp_path / "out"
    keys: dict[str, Any] = {"stage": stage, "max_steps": 4, "save_steps": 2}
    code, first = run_stage(tiny_llama, out, row_builder(rows), **keys)
    assert code == EXIT_SUCCEEDED and is_complete_checkpoint(out / "checkpoint-2")
    checkpoint = str(out / "checkpoint-2")
    code, resumed = run_stage(tiny_llama, out, row_builder(rows), resume_from_checkpoint=checkpoint, **keys)
    assert code == EXIT_SUCCEEDED
    started = next(event for event in resumed if isinstance(event, StartedEvent))
    assert started.resumed_from == checkpoint
    losses = {e.step: e.loss for e in first if isinstance(e, ProgressEvent) and e.loss is not None}
    again = {e.step: e.loss for e in resumed if isinstance(e, ProgressEvent) and e.loss is not None}
    assert sorted(again) == [3, 4]
    assert again == pytest.approx({step: losses[step] for step in (3, 4)}, abs=1e-5)


class SigtermAtStep(TrainerCallback):  # type: ignore[misc]
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)  # what the worker sends; the runner's handler catches it


def test_sigterm_saves_a_checkpoint_and_exits_cancelled(tiny_llama: Path, tmp_path: Path) -> None:
    from tunery.engine.train.runner import run_training

    out, stream = tmp_path / "out", io.StringIO()
    spec = tiny_spec(tiny_llama, out, stage="dpo", max_steps=6)
    code = run_training(spec, EventSink(stream), build_data=row_builder("pairwise"), callbacks=[SigtermAtStep(1)])
    assert code == EXIT_CANCELLED
    saved = [path for path in out.iterdir() if path.name.startswith("checkpoint-")]
    assert len(saved) == 1 and is_complete_checkpoint(saved[0])
    assert not (out / "adapter_model.safetensors").exists()


REFUSED: list[tuple[dict[str, Any], str]] = [
    ({"stage": "dpo", "pref_loss": "kto_pair"}, "pref_loss"),
    ({"stage": "dpo", "pref_loss": "hinge", "dpo_label_smoothing": 0.1}, "dpo_label_smoothing"),
    ({"stage": "dpo", "dpo_label_smoothing": 0.5}, "dpo_label_smoothing"),
    ({"stage": "dpo", "simpo_gamma": 1.0}, "simpo_gamma"),
    ({"stage": "dpo", "pref_loss": "orpo", "ref_model": "/models/ref"}, "ref_model"),
    ({"stage": "dpo", "ref_model_adapters": "/adapters/a"}, "ref_model_adapters"),
    ({"stage": "dpo", "ref_model": "/models/ref", "ref_model_quantization_bit": 4}, "ref_model_quantization_bit"),
    ({"stage": "dpo", "pref_bco_weight": 0.5}, "pref_bco_weight"),
    ({"stage": "dpo", "pref_beta": 0.0}, "pref_beta"),
    ({"stage": "dpo", "pref_ftx": -1.0}, "pref_ftx"),
    ({"stage": "dpo", "kto_chosen_weight": 2.0}, "kto_chosen_weight"),
    ({"stage": "dpo", "pissa_init": True}, "pissa_init"),
    ({"stage": "dpo", "compute_accuracy": True}, "compute_accuracy"),
    ({"stage": "dpo", "group_by_length": True}, "group_by_length"),
    ({"stage": "dpo", "label_smoothing_factor": 0.1}, "label_smoothing_factor"),
    ({"stage": "sft", "pref_beta": 0.2}, "pref_beta"),
    ({"stage": "sft", "ref_model": "/models/ref"}, "ref_model"),
    ({"stage": "rm", "pref_loss": "orpo"}, "pref_loss"),
    ({"stage": "rm", "pref_ftx": 0.1}, "pref_ftx"),
    ({"stage": "kto", "simpo_gamma": 1.0}, "simpo_gamma"),
    ({"stage": "kto", "dpo_label_smoothing": 0.1}, "dpo_label_smoothing"),
    ({"stage": "kto", "kto_rejected_weight": 0.0}, "kto_rejected_weight"),
]


@pytest.mark.parametrize(("keys", "refused"), REFUSED)
def test_preference_keys_are_refused_where_they_cannot_apply(keys: dict[str, Any], refused: str) -> None:
    flat = {"model_name_or_path": "/models/m", "dataset": "d", "output_dir": "/tmp/o", **keys}
    with pytest.raises(SpecError) as caught:
        JobSpec.from_mapping(flat)
    assert refused in [problem.field for problem in caught.value.problems], caught.value


@pytest.mark.parametrize(
    "keys",
    [
        {"stage": "dpo", "pref_loss": "simpo", "simpo_gamma": 1.0, "pref_ftx": 0.1},
        {"stage": "dpo", "dpo_label_smoothing": 0.1, "pref_beta": 0.3},
        {"stage": "dpo", "ref_model": "/models/ref", "ref_model_adapters": "/a,/b"},
        {"stage": "kto", "kto_chosen_weight": 2.0, "kto_rejected_weight": 0.5, "pref_ftx": 0.1},
    ],
)
def test_preference_keys_are_accepted_where_they_apply(keys: dict[str, Any]) -> None:
    JobSpec.from_mapping({"model_name_or_path": "/models/m", "dataset": "d", "output_dir": "/tmp/o", **keys})


def test_every_catalog_stage_has_an_engine_builder_and_rm_loads_a_reward_model() -> None:
    from tunery.engine.train.stages import STAGES, model_kind
    from tunery.spec.stages import STAGE_NAMES

    assert set(STAGES) == set(STAGE_NAMES)
    assert model_kind("rm") == "reward" and model_kind("dpo") == model_kind("kto") == "causal_lm"

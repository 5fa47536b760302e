"""run_training end to end: artifacts, events, trainer_log.jsonl, output_dir rules, error codes."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.support.train_data import tiny_data_builder, tiny_spec
from tunery.engine.events import EventSink
from tunery.engine.train.cancel import CancelRequest
from tunery.engine.train.runner import run_training, setup_training, train_and_save
from tunery.spec.checkpoints import is_complete_checkpoint
from tunery.spec.events import (
    EXIT_FAILED,
    EXIT_INVALID,
    EXIT_SUCCEEDED,
    CheckpointEvent,
    EvalEvent,
    Event,
    FailedEvent,
    FinishedEvent,
    ProgressEvent,
    StartedEvent,
    parse_event,
)

LF_LOG_KEYS = {"current_steps", "total_steps", "loss", "lr", "epoch", "percentage", "elapsed_time", "remaining_time"}


def run(model_dir: Path, output_dir: Path, eval_rows: int = 0, **keys: Any) -> tuple[int, list[Event]]:
    stream = io.StringIO()
    code = run_training(
        tiny_spec(model_dir, output_dir, **keys), EventSink(stream), build_data=tiny_data_builder(eval_rows=eval_rows)
    )
    return code, [parse_event(line) for line in stream.getvalue().splitlines()]


def of_type(events: list[Event], kind: type[Any]) -> list[Any]:
    return [event for event in events if isinstance(event, kind)]


def test_lora_run_writes_lf_artifacts_and_a_well_formed_event_stream(tiny_llama: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, events = run(
        tiny_llama, out, eval_rows=2, max_steps=6, save_steps=3, plot_loss=True, do_eval=True,
        val_size=0.25, eval_strategy="steps", eval_steps=3, compute_accuracy=True,
    )
    assert code == EXIT_SUCCEEDED

    seqs = [event.seq for event in events]
    assert seqs == sorted(set(seqs)) and seqs[0] == 1  # strictly increasing from 1
    kinds = [event.type for event in events]
    assert kinds.index("started") < kinds.index("progress") and kinds[-1] == "finished"
    started = of_type(events, StartedEvent)[0]
    assert (started.stage, started.finetuning_type, started.total_steps) == ("sft", "lora", 6)
    assert started.num_train_examples == 16 and started.num_eval_examples == 2 and started.device == "cpu"
    assert 0 < started.trainable_params < started.total_params
    progress = [event for event in of_type(events, ProgressEvent) if event.loss is not None]
    assert [event.step for event in progress] == [1, 2, 3, 4, 5, 6]
    assert all(e.lr and e.grad_norm is not None and e.tokens_per_second and e.total_steps == 6 for e in progress)
    assert progress[-1].eta_seconds == 0
    assert [event.step for event in of_type(events, EvalEvent)][:2] == [3, 6]
    assert "eval_loss" in of_type(events, EvalEvent)[0].metrics
    assert [event.path for event in of_type(events, CheckpointEvent)] == [str(out / "checkpoint-3"),
                                                                           str(out / "checkpoint-6")]
    finished = of_type(events, FinishedEvent)[0]
    assert (finished.outcome, finished.step, finished.checkpoint) == ("succeeded", 6, None)
    assert "train_loss" in finished.metrics and "eval_perplexity" in finished.metrics
    assert 0 <= finished.metrics["eval_accuracy"] <= 1

    for name in ("adapter_model.safetensors", "adapter_config.json", "tokenizer.json", "trainer_state.json",
                 "train_results.json", "all_results.json", "eval_results.json", "training_loss.png",
                 "training_eval_loss.png"):
        assert (out / name).is_file(), name
    assert not (out / "model.safetensors").exists()  # LoRA saves the adapter only
    all_results = json.loads((out / "all_results.json").read_text())
    assert "train_loss" in all_results and "eval_loss" in all_results
    from transformers import AutoTokenizer

    from tunery.engine.templates import get_template

    saved = AutoTokenizer.from_pretrained(out)  # the training template travels with the model
    assert saved.chat_template == get_template("default", saved).to_jinja()

    records = [json.loads(line) for line in (out / "trainer_log.jsonl").read_text().splitlines()]
    train_records = [record for record in records if "loss" in record]
    assert [record["current_steps"] for record in train_records] == [1, 2, 3, 4, 5, 6]
    assert all(set(record) >= LF_LOG_KEYS for record in train_records)
    assert train_records[-1]["percentage"] == 100
    assert any("eval_loss" in record for record in records)


def test_full_run_saves_model_weights(tiny_llama: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    code, _ = run(tiny_llama, tmp_path / "out", finetuning_type="full", learning_rate=1e-3, max_steps=2)
    assert code == EXIT_SUCCEEDED
    trained = load_file(str(tmp_path / "out" / "model.safetensors"))
    original = load_file(str(tiny_llama / "model.safetensors"))
    assert trained.keys() == original.keys()
    assert not torch.equal(trained["lm_head.weight"], original["lm_head.weight"])
    assert json.loads((tmp_path / "out" / "config.json").read_text())["use_cache"] is True


def test_pretraining_stage_needs_no_chat_template(tiny_llama: Path, tmp_path: Path) -> None:
    code, events = run(tiny_llama, tmp_path / "out", stage="pt", template=None, max_steps=2)
    assert code == EXIT_SUCCEEDED
    assert of_type(events, StartedEvent)[0].stage == "pt"


def test_non_empty_output_dir_is_refused_unless_overwritten(tiny_llama: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "checkpoint-1").mkdir(parents=True)
    (out / "notes.txt").write_text("someone else's file")
    code, events = run(tiny_llama, out, max_steps=1)
    assert code == EXIT_INVALID
    failed = of_type(events, FailedEvent)[0]
    assert failed.code == "invalid_spec"
    assert "output_dir" in failed.message and "overwrite_output_dir" in failed.message

    code, events = run(tiny_llama, out, max_steps=1, overwrite_output_dir=True)
    assert code == EXIT_SUCCEEDED
    assert (out / "notes.txt").exists()  # only the old run's checkpoints are cleared
    assert [p.name for p in out.glob("checkpoint-*")] == ["checkpoint-1"]
    assert is_complete_checkpoint(out / "checkpoint-1")  # the new run's own save replaced the old folder


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only refusal")
@pytest.mark.parametrize(
    ("keys", "named"),
    [({"fp16": True}, "training.fp16"), ({"flash_attn": "fa2"}, "model.flash_attn")],
)
def test_precision_and_kernels_the_machine_lacks_are_refused(
    tiny_llama: Path, tmp_path: Path, keys: dict[str, Any], named: str
) -> None:
    code, events = run(tiny_llama, tmp_path / "out", max_steps=1, **keys)
    assert code == EXIT_FAILED
    failed = of_type(events, FailedEvent)[0]
    assert failed.code == "unsupported_hardware" and named in failed.message


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks bf16 on the CPU")
def test_bf16_trains_on_the_cpu(tiny_llama: Path, tmp_path: Path) -> None:
    """torch computes bf16 on any CPU, so LLaMA-Factory configs with ``bf16: true`` run unchanged."""
    code, events = run(tiny_llama, tmp_path / "out", max_steps=1, bf16=True)
    assert code == EXIT_SUCCEEDED
    assert any("bfloat16" in e.message for e in events if e.type == "log")


@pytest.mark.parametrize(("choice", "expected"), [("auto", "sdpa"), ("sdpa", "sdpa"), ("eager", "eager"),
                                                    ("disabled", "eager")])
def test_attention_implementation_follows_flash_attn(
    tiny_llama: Path, tmp_path: Path, choice: str, expected: str
) -> None:
    spec = tiny_spec(tiny_llama, tmp_path / "out", flash_attn=choice, finetuning_type="full")
    session = setup_training(spec, EventSink(), CancelRequest(), build_data=tiny_data_builder())
    assert session.prepared.model.config._attn_implementation == expected


def test_gradient_checkpointing_is_on_by_default_like_llamafactory(tiny_llama: Path, tmp_path: Path) -> None:
    spec = tiny_spec(tiny_llama, tmp_path / "out", disable_gradient_checkpointing=False, max_steps=2)
    session = setup_training(spec, EventSink(), CancelRequest(), build_data=tiny_data_builder())
    base = session.prepared.model.get_base_model()  # type: ignore[operator]
    assert base.is_activation_checkpointing and base.config.use_cache is False
    result = session.trainer.train()
    assert result.global_step == 2


def test_added_tokens_resize_vocab_and_train_embeddings(tiny_llama: Path, tmp_path: Path) -> None:
    spec = tiny_spec(tiny_llama, tmp_path / "out", add_special_tokens="<|new_a|>,<|new_b|>")
    session = setup_training(spec, EventSink(), CancelRequest(), build_data=tiny_data_builder())
    model = session.prepared.model
    rows = model.get_input_embeddings().weight.shape[0]  # type: ignore[operator]
    assert rows >= len(session.tokenizer) and rows % 64 == 0
    assert session.tokenizer.convert_tokens_to_ids("<|new_b|>") == len(session.tokenizer) - 1
    saved = set(model.peft_config["default"].modules_to_save)  # type: ignore[index]
    assert saved == {"embed_tokens", "lm_head"}


def test_training_continues_from_a_given_adapter(tiny_llama: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    code, _ = run(tiny_llama, tmp_path / "first", max_steps=2)
    assert code == EXIT_SUCCEEDED
    spec = tiny_spec(tiny_llama, tmp_path / "second", adapter_name_or_path=str(tmp_path / "first"))
    session = setup_training(spec, EventSink(), CancelRequest(), build_data=tiny_data_builder())
    saved = load_file(str(tmp_path / "first" / "adapter_model.safetensors"))
    params = dict(session.prepared.model.named_parameters())
    for name, tensor in saved.items():
        loaded = params[name.replace(".weight", ".default.weight")]
        assert loaded.requires_grad and torch.equal(loaded.detach(), tensor)


def test_bad_data_is_reported_as_invalid_data(tiny_llama: Path, tmp_path: Path) -> None:
    from tunery.engine.data.api import DataError

    def broken(*args: Any) -> Any:
        raise DataError("data/broken.json, row 3, field 'output': missing")

    stream = io.StringIO()
    code = run_training(tiny_spec(tiny_llama, tmp_path / "out"), EventSink(stream), build_data=broken)
    assert code == EXIT_INVALID
    failed = parse_event(stream.getvalue().splitlines()[-1])
    assert isinstance(failed, FailedEvent) and failed.code == "invalid_data" and "row 3" in failed.message


def test_pissa_adapter_is_saved_for_the_original_model(tiny_llama: Path, tmp_path: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = tmp_path / "out"
    spec = tiny_spec(tiny_llama, out, pissa_init=True, pissa_iter=-1, learning_rate=5e-3, max_steps=3)
    session = setup_training(spec, EventSink(), CancelRequest(), build_data=tiny_data_builder())
    assert (out / "pissa_init" / "adapter_model.safetensors").is_file()
    assert train_and_save(session, EventSink()) == EXIT_SUCCEEDED
    assert not (out / "pissa_init").exists()
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 16  # converted: rank doubled

    ids = torch.tensor([[5, 17, 42, 99, 7]])
    trained = session.prepared.model.eval()
    reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama), out).eval()
    with torch.no_grad():
        assert torch.allclose(trained(input_ids=ids).logits, reloaded(input_ids=ids).logits, atol=1e-4)


def test_real_data_pipeline_feeds_training(tiny_llama: Path, tmp_path: Path, demo_data_dir: Path) -> None:
    stream = io.StringIO()
    keys: dict[str, Any] = {"dataset_dir": str(demo_data_dir), "max_samples": 8, "cutoff_len": 64, "max_steps": 2}
    spec = tiny_spec(tiny_llama, tmp_path / "out", dataset="alpaca_en_demo", **keys)
    assert run_training(spec, EventSink(stream), cache_dir=tmp_path / "cache") == EXIT_SUCCEEDED
    events = [parse_event(line) for line in stream.getvalue().splitlines()]
    assert of_type(events, StartedEvent)[0].num_train_examples == 8

    stream = io.StringIO()
    spec = tiny_spec(tiny_llama, tmp_path / "bad", dataset="no_such_dataset", **keys)
    assert run_training(spec, EventSink(stream), cache_dir=tmp_path / "cache") == EXIT_INVALID
    failed = parse_event(stream.getvalue().splitlines()[-1])
    assert isinstance(failed, FailedEvent) and failed.code == "invalid_data" and "no_such_dataset" in failed.message


def test_gguf_model_is_loaded_dequantized_and_trains(tiny_llama: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from tests.support.gguf_model import write_llama_gguf

    folder = tmp_path / "gguf"
    folder.mkdir()
    write_llama_gguf(tiny_llama, folder / "tiny.gguf")
    spec = tiny_spec(folder, tmp_path / "out", gguf_file="tiny.gguf", finetuning_type="full", max_steps=2)
    session = setup_training(spec, EventSink(), CancelRequest(), build_data=tiny_data_builder())
    loaded = session.prepared.model.state_dict()
    for name, tensor in load_file(str(tiny_llama / "model.safetensors")).items():
        assert torch.allclose(loaded[name], tensor), name
    assert session.tokenizer.eos_token == "<|eot_id|>"
    assert session.trainer.train().global_step == 2

    code, events = run(folder, tmp_path / "missing", gguf_file="missing.gguf", max_steps=1)
    failed = events[-1]
    assert code == EXIT_INVALID and isinstance(failed, FailedEvent) and failed.message.startswith("gguf_file:")

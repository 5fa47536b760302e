"""The job spec: LLaMA-Factory keys, nested form, errors, overrides, cross-field rules."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tunery.spec import JobSpec, SpecError, load_spec, parse_overrides
from tunery.spec.events import FinishedEvent, ProgressEvent, parse_event

LF_CONFIGS = Path(__file__).resolve().parents[1] / "fixtures" / "lf_configs"


def _problems(raw: dict[str, object]) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        JobSpec.from_mapping(raw)
    return {problem.field: problem.message for problem in info.value.problems}


@pytest.mark.parametrize("path", sorted(LF_CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_llamafactory_example_configs_load_unchanged(path: Path) -> None:
    spec = load_spec(path)
    raw = yaml.safe_load(path.read_text())
    assert spec.model.model_name_or_path == raw["model_name_or_path"]
    assert spec.method.stage == raw["stage"]
    assert spec.method.finetuning_type == raw["finetuning_type"]
    assert spec.training.learning_rate == pytest.approx(float(raw["learning_rate"]))
    assert spec.data.dataset == raw["dataset"].split(",")
    # Every key of the file survives the round trip to the flat LLaMA-Factory form.
    flat = spec.to_flat(exclude_defaults=False)
    for key in raw:
        assert key in flat


def test_lists_accept_commas_and_lists() -> None:
    spec = JobSpec.from_mapping(
        {"model_name_or_path": "m", "dataset": "a, b", "lora_target": ["q_proj", "v_proj"]}
    )
    assert spec.data.dataset == ["a", "b"]
    assert spec.method.lora_target == ["q_proj", "v_proj"]
    assert spec.method.effective_lora_alpha == 16


def test_nested_form_equals_flat_form() -> None:
    flat = JobSpec.from_mapping({"model_name_or_path": "m", "dataset": "a", "lora_rank": 4, "seed": 7})
    nested = JobSpec.from_mapping(
        {"model": {"model_name_or_path": "m"}, "data": {"dataset": ["a"]},
         "method": {"lora_rank": 4}, "training": {"seed": 7}}
    )
    assert flat == nested


def test_unknown_key_names_it_and_suggests() -> None:
    problems = _problems({"model_name_or_path": "m", "dataset": "a", "lora_rnak": 8, "learning_rat": 1})
    assert problems["lora_rnak"] == "unknown key; did you mean 'lora_rank'?"
    assert problems["learning_rat"] == "unknown key; did you mean 'learning_rate'?"


def test_key_in_wrong_section_is_named() -> None:
    problems = _problems({"model": {"model_name_or_path": "m", "lora_rank": 8}, "data": {"dataset": "a"}})
    assert problems["lora_rank"] == "unknown key in section 'model'; it belongs to section 'method'"


def test_bad_values_name_the_field() -> None:
    problems = _problems({"model_name_or_path": "m", "dataset": "a", "learning_rate": "fast",
                          "finetuning_type": "qlora", "cutoff_len": 0})
    assert "learning_rate" in problems and "'fast'" in problems["learning_rate"]
    assert "finetuning_type" in problems and "'qlora'" in problems["finetuning_type"]
    assert "cutoff_len" in problems


def test_missing_model_is_required() -> None:
    assert _problems({"dataset": "a"}) == {"model_name_or_path": "is required"}


@pytest.mark.parametrize(
    ("raw", "field", "fragment"),
    [
        ({"stage": "orpo"}, "stage", "'grpo'"),
        ({"bf16": True, "fp16": True}, "bf16", "cannot both"),
        ({"streaming": True}, "max_steps", "when streaming"),
        ({"eval_strategy": "steps"}, "eval_strategy", "needs val_size"),
        ({"val_size": 2.5}, "val_size", "whole number"),
        ({"interleave_probs": "0.5,0.5"}, "interleave_probs", "interleave_under/over"),
        ({"mix_strategy": "interleave_under", "interleave_probs": "1.0"}, "interleave_probs", "2 datasets"),
        ({"finetuning_type": "full", "use_dora": True}, "use_dora", "only applies to finetuning_type: lora"),
        ({"finetuning_type": "freeze", "freeze_trainable_layers": 0}, "freeze_trainable_layers", "not be 0"),
        ({"quantization_bit": 4}, "quantization_bit", "does not support"),
        ({"neat_packing": True, "packing": False}, "neat_packing", "needs packing"),
        ({"resume_from_checkpoint": "auto", "overwrite_output_dir": True}, "resume_from_checkpoint", "cannot"),
    ],
)
def test_cross_field_rules(raw: dict[str, object], field: str, fragment: str) -> None:
    base: dict[str, object] = {"model_name_or_path": "m", "dataset": "a,b"}
    problems = _problems({**base, **raw})
    assert field in problems
    assert fragment in problems[field]


def test_dataset_required_to_train() -> None:
    assert "dataset" in _problems({"model_name_or_path": "m"})
    JobSpec.from_mapping({"model_name_or_path": "m", "do_train": False})


def test_rules_fill_dependent_defaults() -> None:
    pt = JobSpec.from_mapping({"model_name_or_path": "m", "dataset": "a", "stage": "pt"})
    sft = JobSpec.from_mapping({"model_name_or_path": "m", "dataset": "a", "stage": "sft"})
    neat = JobSpec.from_mapping({"model_name_or_path": "m", "dataset": "a", "neat_packing": True})
    evald = JobSpec.from_mapping(
        {"model_name_or_path": "m", "dataset": "a", "val_size": 0.1, "eval_strategy": "steps",
         "logging_steps": 5}
    )
    assert pt.data.packing is True and sft.data.packing is False and neat.data.packing is True
    assert evald.training.eval_steps == 5


def test_overrides_are_yaml_scalars(tmp_path: Path) -> None:
    assert parse_overrides(["lora_rank=16", "bf16=false", "dataset=a,b", "training.learning_rate=1e-4"]) == {
        "lora_rank": 16, "bf16": False, "dataset": "a,b", "learning_rate": 1e-4,
    }
    job = tmp_path / "job.yaml"
    job.write_text("model_name_or_path: m\ndataset: a\nlora_rank: 8\n")
    spec = load_spec(job, ["lora_rank=32", "dataset=x,y"])
    assert spec.method.lora_rank == 32
    assert spec.data.dataset == ["x", "y"]
    with pytest.raises(SpecError, match="override must look like key=value"):
        load_spec(job, ["lora_rank"])


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model_name_or_path: [unclosed\n")
    with pytest.raises(SpecError, match=r"(?s)bad\.yaml.*not valid YAML"):
        load_spec(bad)
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(tmp_path / "missing.yaml")
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(SpecError, match="must contain a mapping"):
        load_spec(listing)


def test_yaml_round_trip() -> None:
    spec = JobSpec.from_mapping({"model_name_or_path": "m", "dataset": "a", "lora_rank": 4, "seed": 3})
    again = JobSpec.from_mapping(yaml.safe_load(spec.to_yaml()))
    assert again == spec


def test_json_schema_is_exportable() -> None:
    schema = JobSpec.model_json_schema()
    assert "ModelSection" in schema["$defs"]
    assert "lora_rank" in schema["$defs"]["MethodSection"]["properties"]


def test_spec_does_not_import_torch() -> None:
    code = "import sys, tunery.spec, tunery.spec.events; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_events_round_trip() -> None:
    progress = ProgressEvent(seq=3, step=2, total_steps=10, epoch=0.2, loss=1.5, elapsed_seconds=1.0)
    again = parse_event(progress.model_dump_json())
    assert again == progress
    finished = parse_event('{"seq": 9, "type": "finished", "outcome": "cancelled", "step": 4, "output_dir": "o"}')
    assert isinstance(finished, FinishedEvent) and finished.outcome == "cancelled"

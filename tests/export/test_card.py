"""The model card: the Hub's own parser (huggingface_hub.ModelCard) reads its front matter, and the body holds the
lineage, data with versions and hashes, training keys (no credentials), metrics, eval results, files and usage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import ModelCard
from huggingface_hub.repocard import metadata_load

from tunery.engine.export.card import CARD, write_card
from tunery.engine.export.types import ExportContext, WrittenArtifact
from tunery.engine.train.cancel import CancelRequest
from tunery.spec.job import JobSpec

DATASETS = [
    {
        "name": "alpaca_en_demo",
        "dataset": "alpaca_en_demo",
        "version": "v3",
        "content_hash": "sha256:1f2e3d",
        "rows": 1000,
    },
    {"name": "tatsu-lab/alpaca", "version": "v1", "content_hash": "sha256:abcdef", "rows": 52002},
]
ARTIFACTS = [
    WrittenArtifact("merged", "hf", ".", 540_000_000, None, "transformers", {"greedy_match": 1.0}),
    WrittenArtifact("model-F16.gguf", "gguf", "model-F16.gguf", 271_000_000, "F16", "gguf", {"greedy_match": 1.0}),
    WrittenArtifact(
        "model-Q4_K_M.gguf",
        "gguf",
        "model-Q4_K_M.gguf",
        105_000_000,
        "Q4_K_M",
        "gguf",
        {"perplexity": 12.5, "perplexity_ratio": 1.04},
    ),
    WrittenArtifact("onnx", "onnx", "onnx", 560_000_000, None, None, {"greedy_match": 0.96875}),
    WrittenArtifact("Modelfile", "modelfile", "Modelfile", 900),
]


def make_run(root: Path) -> Path:
    """What a Tunery training job leaves: jobs/<id>/job.yaml and jobs/<id>/output with the adapter and results."""
    job = root / "jobs" / "job-1"
    output = job / "output"
    output.mkdir(parents=True)
    (job / "job.yaml").write_text(
        yaml.safe_dump(
            {
                "model": {"model_name_or_path": "HuggingFaceTB/SmolLM2-135M-Instruct", "hf_hub_token": "hf_SECRET"},
                "method": {"stage": "sft", "finetuning_type": "lora", "lora_rank": 8},
                "data": {"dataset": "alpaca_en_demo", "template": "chatml"},
                "training": {"learning_rate": 0.0001, "num_train_epochs": 2.0, "output_dir": str(output)},
            }
        )
    )
    (output / "adapter_config.json").write_text(
        json.dumps(
            {
                "peft_type": "LORA",
                "r": 8,
                "lora_alpha": 16,
                "target_modules": ["q_proj", "v_proj"],
                "base_model_name_or_path": "HuggingFaceTB/SmolLM2-135M-Instruct",
            }
        )
    )
    (output / "all_results.json").write_text(json.dumps({"train_loss": 1.2345, "epoch": 2.0, "eval_loss": 1.5}))
    checkpoint = output / "checkpoint-10"
    checkpoint.mkdir()
    (checkpoint / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4, "use_dora": True}))
    (checkpoint / "trainer_state.json").write_text(
        json.dumps({"log_history": [{"step": 5, "loss": 2.0}, {"step": 10, "loss": 1.75, "learning_rate": 5e-5}]})
    )
    return output


def context(base: str, root: Path, *, gguf_file: str | None = None, adapters: list[str] | None = None) -> ExportContext:
    model: dict[str, Any] = {"model_name_or_path": base, "adapter_name_or_path": adapters}
    if gguf_file:
        model["gguf_file"] = gguf_file
    spec = JobSpec.model_validate({"model": model, "data": {"dataset": ["alpaca_en_demo"]}})
    out = root / "export"
    out.mkdir(exist_ok=True)
    return ExportContext(spec, out, out, CancelRequest(), lambda line: None)


def test_card_from_a_training_run(tmp_path: Path) -> None:
    output = make_run(tmp_path)
    base = tmp_path / "hub" / "models--HuggingFaceTB--SmolLM2-135M-Instruct" / "snapshots" / "abc123"
    base.mkdir(parents=True)
    (base / "README.md").write_text("---\nlicense: apache-2.0\nlanguage: en\n---\n# SmolLM2\n")
    ctx = context(str(base), tmp_path, adapters=[str(output), str(output / "checkpoint-10")])
    card_context = {  # what the worker writes (every key present; null/[]/{} when unknown)
        "export_job": {"id": "exp-7", "name": "SmolLM2 alpaca"},
        "model": "ft:SmolLM2-135M-Instruct:demo:job-1:ckpt-10",
        "adapters": [],
        "base_model": {"name": "HuggingFaceTB/SmolLM2-135M-Instruct", "path": str(base), "id": "m-1"},
        "source_job": {"id": "job-1", "name": "alpaca sft", "stage": "sft", "template": None},
        "checkpoint_step": 10,
        "datasets": DATASETS,
        "final_metrics": {"train_runtime": 61.5},
        "eval_results": [
            {
                "job_id": "ev-1",
                "model": "ft:x",
                "name": "mmlu_demo",
                "kind": "benchmark",
                "metrics": {"accuracy": 0.3125, "n": 32},
            },
            {
                "job_id": "ev-2",
                "model": "ft:x",
                "name": "alpaca_predict",
                "kind": "predict",
                "metrics": {"bleu-4": 12.5, "rouge-l": 30.1},
            },
        ],
    }
    written = write_card(ctx, ARTIFACTS, card_context)
    path = ctx.export_dir / CARD
    assert written == WrittenArtifact(CARD, "card", CARD, path.stat().st_size)
    assert not list(ctx.export_dir.glob("*.partial"))

    card = ModelCard.load(path)  # the Hub's parser
    data = card.data
    assert data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"  # from the hub cache folder name
    assert data.license == "apache-2.0"
    assert data.library_name == "transformers"
    assert data.pipeline_tag == "text-generation"
    assert data.datasets == ["tatsu-lab/alpaca"]  # only hub ids; local names are in the body
    assert {"tunery", "gguf", "onnx", "ollama", "peft"} <= set(data.tags)
    assert data.to_dict()["base_model_relation"] == "finetune"
    evals = {(r.dataset_name, r.metric_type): r.metric_value for r in data.eval_results}
    assert evals == {
        ("mmlu_demo", "accuracy"): 0.3125,
        ("mmlu_demo", "n"): 32,
        ("alpaca_predict", "bleu-4"): 12.5,
        ("alpaca_predict", "rouge-l"): 30.1,
    }
    assert metadata_load(path) == data.to_dict()

    body = card.text
    # lineage: base, both adapters in order with their settings, the source job
    # absolute paths show their last two parts only (the card may be pushed to a hub)
    first, second = "/".join(output.parts[-2:]), f"{output.name}/checkpoint-10"
    assert body.index(f"Adapter 1 merged: `{first}`") < body.index(f"Adapter 2 merged: `{second}`")
    assert str(output.parent) not in body
    assert "r: 8, lora_alpha: 16, target_modules: q_proj, v_proj" in body
    assert "use_dora: True" in body
    assert "Source job: id: job-1, name: alpaca sft, stage: sft" in body
    assert "Checkpoint: step 10" in body and "`ft:SmolLM2-135M-Instruct:demo:job-1:ckpt-10`" in body
    assert body.lstrip().startswith("# SmolLM2 alpaca")
    # datasets with versions, hashes and rows
    assert "| `alpaca_en_demo` | v3 | `sha256:1f2e3d` | 1000 |" in body
    assert "| `tatsu-lab/alpaca` | v1 | `sha256:abcdef` | 52002 |" in body
    # the saved job file, flat, without credentials
    config = yaml.safe_load(body.split("```yaml\n")[1].split("```")[0])
    assert config["learning_rate"] == 0.0001 and config["lora_rank"] == 8 and config["template"] == "chatml"
    assert "hf_hub_token" not in config and "hf_SECRET" not in path.read_text()
    # final metrics: the last adapter is a checkpoint (its last logged values), plus the worker's
    assert "| `loss` | 1.75 |" in body and "| `train_runtime` | 61.5 |" in body
    assert "### mmlu_demo (benchmark)\n\nEvaluation job `ev-1` of `ft:x`" in body and "| `accuracy` | 0.3125 |" in body
    # files with quantization, size and checks
    assert "| `model-Q4_K_M.gguf` | gguf | Q4_K_M | 105.0 MB | perplexity 12.5, perplexity ratio 1.04 |" in body
    assert "| `onnx` | onnx |  | 560.0 MB | greedy match 96.9% |" in body
    # how to run each format
    for command in (
        "AutoModelForCausalLM.from_pretrained",
        "llama-cli -m model-Q4_K_M.gguf",
        "ollama create my-model -f Modelfile",
        'ORTModelForCausalLM.from_pretrained("onnx")',
    ):
        assert command in body
    assert "`apache-2.0`" in body


def test_unknown_license_is_other_with_a_note(tmp_path: Path) -> None:
    ctx = context("some-org/not-in-any-cache", tmp_path)
    write_card(ctx, ARTIFACTS[1:3], None)
    card = ModelCard.load(ctx.export_dir / CARD)
    assert card.data.license == "other"
    assert card.data.license_name == "unknown"
    assert card.data.base_model == "some-org/not-in-any-cache"
    assert card.data.library_name == "gguf"
    assert card.data.to_dict()["base_model_relation"] == "quantized"
    assert "license could not be found" in card.text
    assert "| `alpaca_en_demo` |" in card.text  # dataset names from the spec without a card context
    assert "AutoModelForCausalLM" not in card.text  # no transformers folder was exported


def test_license_from_the_base_gguf_and_local_base(tmp_path: Path) -> None:
    import gguf

    base = tmp_path / "demo"
    base.mkdir()
    writer = gguf.GGUFWriter(str(base / "demo.Q4_1.gguf"), "llama")
    writer.add_string("general.license", "mit")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    ctx = context(str(base), tmp_path, gguf_file="demo.Q4_1.gguf")
    write_card(ctx, ARTIFACTS[:1], {"name": "My demo export"})
    card = ModelCard.load(ctx.export_dir / CARD)
    assert card.data.license == "mit"
    assert card.data.base_model is None  # a local folder is no hub id
    assert card.text.lstrip().startswith("# My demo export")
    assert "demo.Q4_1.gguf (general.license)" in card.text

"""The export job: events, results file, verification reference, cancel by SIGTERM, the checks made before any
work (GPTQ without a GPU, hub offline or unreachable, missing token or package), the hub push, the writer
registry and the ``tunery export`` command as a subprocess."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from transformers import AutoModelForCausalLM

from tests.export.adapters import export_spec, make_lora, run
from tunery.engine.events import EventSink
from tunery.engine.export import hub, writers
from tunery.engine.export.runner import RESULTS_FILE, SCRATCH_DIR, run_export
from tunery.engine.export.types import VERIFY_TOKENS
from tunery.engine.export.verify import VERIFY_MESSAGES, greedy_tokens, verify_prompts
from tunery.engine.templates import get_template
from tunery.spec import JobSpec
from tunery.spec.events import (
    EXIT_CANCELLED,
    EXIT_INVALID,
    EXIT_SUCCEEDED,
    ArtifactEvent,
    Event,
    FailedEvent,
    FinishedEvent,
    LogEvent,
    ProgressEvent,
    StartedEvent,
    parse_event,
)
from tunery.spec.export_formats import EXPORT_FORMATS

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def lora(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_lora(tiny_llama, tmp_path_factory.mktemp("lora") / "adapter", seed=5)


def of_type(events: list[Event], kind: type[Any]) -> list[Any]:
    return [event for event in events if isinstance(event, kind)]


def test_events_and_results_file(tiny_llama: Path, lora: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, events = run(export_spec(tiny_llama, out, adapter_name_or_path=str(lora)))
    assert code == EXIT_SUCCEEDED
    started, finished = of_type(events, StartedEvent), of_type(events, FinishedEvent)
    assert started[0].stage == "export" and started[0].total_steps == 4  # merge, save, reference, card
    assert [p.step for p in of_type(events, ProgressEvent)] == [1, 2, 3, 4]
    assert sum(1 for e in of_type(events, LogEvent) if e.message.startswith("[")) == 4  # a log per phase
    artifacts = {a.name: a for a in of_type(events, ArtifactEvent)}
    assert artifacts["model"].format == "hf" and artifacts["README.md"].format == "card"
    assert finished[0].outcome == "succeeded" and finished[0].output_dir == str(out) and finished[0].step == 4
    assert finished[0].metrics["model/max_logit_diff"] < 1e-4
    results = json.loads((out / RESULTS_FILE).read_text())
    assert [a["name"] for a in results["artifacts"]] == list(artifacts)
    assert results["seconds"] > 0 and results["peak_rss_bytes"] > 0
    assert artifacts["model"].size_bytes == sum(
        p.stat().st_size for p in out.iterdir() if p.name not in ("README.md", RESULTS_FILE)
    )
    assert not (out / SCRATCH_DIR).exists() and not list(out.glob(".tmp-*"))


def tooling_missing(formats: str) -> str | None:
    """Why the writers of ``formats`` cannot run here (their own preflight), or None."""
    try:
        writers.preflight(
            JobSpec.from_mapping({"model_name_or_path": "m", "do_train": False, "export_formats": formats})
        )
    except Exception as exc:
        return str(exc)
    return None


@pytest.mark.skipif(tooling_missing("gguf,onnx") is not None, reason=str(tooling_missing("gguf,onnx")))
def test_formats_without_hf_get_the_reference_and_the_tokenizer(tiny_llama: Path, lora: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    keys = {"export_formats": "gguf,onnx", "export_gguf_types": "F16"}
    code, events = run(export_spec(tiny_llama, out, adapter_name_or_path=str(lora), **keys))
    assert code == EXIT_SUCCEEDED, events[-1]
    artifacts = of_type(events, ArtifactEvent)
    assert [a.name for a in artifacts] == ["gguf-F16", "onnx", "Modelfile", "README.md"]  # writers' order
    assert artifacts[0].checks["greedy_match"] == 1.0 and artifacts[1].checks["greedy_match"] == 1.0
    assert of_type(events, StartedEvent)[0].total_steps == 7
    assert not list(out.glob("*.safetensors")) and not list(out.glob("*.bin"))  # no merged model
    # but what the GGUF file is served with: config, tokenizer, chat template, generation config
    side = {"config.json", "tokenizer.json", "chat_template.jinja", "generation_config.json"}
    assert side <= {p.name for p in out.iterdir()}
    assert not (out / SCRATCH_DIR).exists() and not list(out.glob(".tmp-*"))


def test_verification_reference_is_greedy_decoding(tiny_llama: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    prompts = verify_prompts(tokenizer, get_template("llama3", tokenizer))
    assert len(prompts) == len(VERIFY_MESSAGES) and str(tokenizer.decode(prompts[0])).startswith("<|begin_of_text|>")
    model: Any = AutoModelForCausalLM.from_pretrained(tiny_llama)
    model.eval()
    model.generation_config.eos_token_id = None  # decode the full length, as the reference does
    ours = greedy_tokens(model, prompts)
    for prompt, tokens in zip(prompts, ours, strict=True):
        out = model.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=VERIFY_TOKENS)
        assert tokens == out[0, len(prompt) :].tolist() and len(tokens) == VERIFY_TOKENS


def test_sigterm_cancels_between_phases_and_leaves_no_temporary_files(
    tiny_llama: Path, lora: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "model-F16.gguf.partial").write_bytes(b"half a file of a killed export")

    def terminate_while_saving(event: Event) -> None:
        if isinstance(event, LogEvent) and "save the merged model" in event.message:
            os.kill(os.getpid(), signal.SIGTERM)  # arrives while the merged model is being written

    stream: list[Event] = []
    sink = EventSink(listeners=[terminate_while_saving, stream.append])
    code = run_export(export_spec(tiny_llama, out, adapter_name_or_path=str(lora)), sink)
    assert code == EXIT_CANCELLED
    finished = of_type(stream, FinishedEvent)[0]
    assert finished.outcome == "cancelled" and finished.step == 1
    assert not of_type(stream, ArtifactEvent)  # the merged model was written to scratch only
    left = sorted(p.name for p in out.rglob("*"))
    assert left == [RESULTS_FILE], left  # no scratch model, no .partial, no weights
    assert json.loads((out / RESULTS_FILE).read_text())["outcome"] == "cancelled"


def failed_before_work(spec: JobSpec, key: str, *words: str) -> FailedEvent:
    code, events = run(spec)
    assert code == EXIT_INVALID
    assert not of_type(events, StartedEvent)  # refused before any work
    failed: FailedEvent = of_type(events, FailedEvent)[0]
    assert failed.code == "invalid_spec" and failed.message.startswith(f"{key}:"), failed.message
    assert all(word in failed.message for word in words), failed.message
    assert not Path(spec.export.export_dir or "").exists()
    return failed


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_gptq_without_gpu_fails_at_start(tiny_llama: Path, tmp_path: Path) -> None:
    data = tmp_path / "calibration.jsonl"
    data.write_text(json.dumps({"text": "some text " * 50}) + "\n")
    spec = export_spec(tiny_llama, tmp_path / "out", export_quantization_bit=4, export_quantization_dataset=str(data))
    assert spec.export.export_formats == ["gptq"]  # LF's export file with export_quantization_bit: a GPTQ model
    failed_before_work(spec, "export_quantization_bit", "CUDA GPU")


def test_hub_offline_fails_before_work(tiny_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = export_spec(tiny_llama, tmp_path / "out", export_hub_model_id="me/tiny")
    failed_before_work(spec, "export_hub_model_id", "offline")


def test_hub_unreachable_fails_before_work(tiny_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setenv("MY_TOKEN", "hf_test")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    spec = export_spec(tiny_llama, tmp_path / "out", export_hub_model_id="me/tiny", export_hub_token_env="MY_TOKEN")
    failed_before_work(spec, "export_hub_model_id", "127.0.0.1:9", "cannot be reached")


def test_hub_token_and_package_are_checked_before_work(
    tiny_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NO_SUCH_TOKEN", raising=False)
    spec = export_spec(
        tiny_llama, tmp_path / "out", export_hub_model_id="me/tiny", export_hub_token_env="NO_SUCH_TOKEN"
    )
    failed_before_work(spec, "export_hub_token_env", "NO_SUCH_TOKEN")
    if importlib.util.find_spec("modelscope") is None:  # not installed here: the refusal is real
        spec = export_spec(tiny_llama, tmp_path / "out", export_hub_model_id="me/tiny", export_hub="modelscope")
        failed_before_work(spec, "export_hub", "modelscope is not installed")


def test_export_dir_is_required_and_not_the_source(tiny_llama: Path, lora: Path, tmp_path: Path) -> None:
    no_dir = JobSpec.from_mapping({"model_name_or_path": str(tiny_llama), "do_train": False})
    code, events = run(no_dir)
    assert code == EXIT_INVALID and of_type(events, FailedEvent)[0].message.startswith("export_dir: is required")
    code, events = run(export_spec(tiny_llama, lora, adapter_name_or_path=str(lora)))
    assert code == EXIT_INVALID and "adapter_name_or_path" in of_type(events, FailedEvent)[0].message


class FakeHfApi:
    """Records what the push would upload (the push's wiring; the network is not reached)."""

    calls: ClassVar[list[tuple[str, dict[str, Any]]]] = []

    def __init__(self, token: str) -> None:
        self.calls.append(("token", {"token": token}))

    def create_repo(self, repo_id: str, **kwargs: Any) -> Any:
        self.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))
        return type("RepoUrl", (str,), {"repo_id": repo_id})(f"https://hub.example/{repo_id}")

    def upload_folder(self, **kwargs: Any) -> None:
        self.calls.append(("upload_folder", kwargs))


def test_hub_push_is_last_with_the_env_token(tiny_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    monkeypatch.setenv("PUSH_TOKEN", "hf_secret")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub, "check_reachable", lambda url: None)
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHfApi)
    spec = export_spec(tiny_llama, tmp_path / "out", export_hub_model_id="me/tiny", export_hub_token_env="PUSH_TOKEN")
    code, events = run(spec)
    assert code == EXIT_SUCCEEDED
    assert [name for name, _ in FakeHfApi.calls] == ["token", "create_repo", "upload_folder"]
    assert FakeHfApi.calls[0][1]["token"] == "hf_secret" and FakeHfApi.calls[1][1]["private"] is True
    upload = FakeHfApi.calls[2][1]
    assert upload["folder_path"] == str(tmp_path / "out") and RESULTS_FILE in upload["ignore_patterns"]
    logs = [e.message for e in of_type(events, LogEvent)]
    assert logs[-1] == "pushed to https://hub.example/me/tiny" and not any("hf_secret" in m for m in logs)
    assert json.loads((tmp_path / "out" / RESULTS_FILE).read_text())["hub_url"] == "https://hub.example/me/tiny"


def test_writer_registry_lists_every_export_format() -> None:
    assert list(writers.WRITERS) == [fmt.name for fmt in EXPORT_FORMATS]
    assert set(writers.WRITE_ORDER) == {fmt.name for fmt in EXPORT_FORMATS} - {"hf"}
    for name in writers.WRITE_ORDER:
        target = writers.WRITERS[name].target
        assert target == f"tunery.engine.export.{name}:write_{name}"


def test_cli_export_streams_json_events(tiny_llama: Path, lora: Path, tmp_path: Path) -> None:
    job = tmp_path / "job.yaml"
    job.write_text(f"model_name_or_path: {tiny_llama}\nadapter_name_or_path: {lora}\ntemplate: llama3\n")
    context = tmp_path / "card.json"
    context.write_text(json.dumps({"export_job": {"id": "job-1", "name": "tiny export"}}))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "tunery.cli.main", "export", str(job), f"export_dir={out}", "--events", "-"]
    result = subprocess.run(
        [*command, "--card-context", str(context)], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert result.returncode == EXIT_SUCCEEDED, result.stderr[-2000:]
    events = [parse_event(line) for line in result.stdout.splitlines()]
    assert isinstance(events[0], StartedEvent) and isinstance(events[-1], FinishedEvent)
    assert {e.name for e in of_type(events, ArtifactEvent)} == {"model", "README.md"}
    assert "tiny export" in (out / "README.md").read_text()

    missing = subprocess.run([*command[:5], "--events", "-"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert missing.returncode == EXIT_INVALID and "export_dir: is required" in missing.stderr


def test_gptq_calibration_windows(tiny_llama: Path, tmp_path: Path) -> None:
    """What GPTQModel is given (the quantization itself needs a CUDA GPU): LF's random windows, seeded."""
    from transformers import AutoTokenizer

    from tunery.engine.export.gptq import calibration_samples, calibration_texts
    from tunery.engine.train.errors import TrainingError

    texts = ["The quick brown fox jumps over the lazy dog. " * (4 + i) for i in range(6)] + ["too short"]
    data = tmp_path / "texts.json"
    data.write_text(json.dumps(texts))
    lines = tmp_path / "texts.jsonl"
    lines.write_text("\n".join(json.dumps({"text": text}) for text in texts))
    keys = {"export_formats": "gptq", "export_quantization_bit": 4, "export_quantization_nsamples": 5}
    spec = export_spec(
        tiny_llama, tmp_path / "o", export_quantization_dataset=str(data), export_quantization_maxlen=16, **keys
    )
    assert (
        calibration_texts(spec)
        == texts
        == calibration_texts(
            spec.model_copy(
                update={"export": spec.export.model_copy(update={"export_quantization_dataset": str(lines)})}
            )
        )
    )
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    samples = calibration_samples(spec, tokenizer, texts)
    assert len(samples) == 5 and all(len(s["input_ids"]) == 16 == sum(s["attention_mask"]) for s in samples)
    whole = [tokenizer(text)["input_ids"] for text in texts]
    assert all(any(str(s["input_ids"])[1:-1] in str(ids) for ids in whole) for s in samples)  # windows of texts
    assert samples == calibration_samples(spec, tokenizer, texts)  # seeded by the job's seed
    with pytest.raises(TrainingError, match="export_quantization_maxlen"):
        calibration_samples(
            spec.model_copy(update={"export": spec.export.model_copy(update={"export_quantization_maxlen": 4096})}),
            tokenizer,
            texts,
        )

"""A prediction run on the vLLM engine (.venv-vllm, `make vllm`): the same greedy answers as transformers'
own ``generate`` and the transformers engine, with a LoRA adapter (one vLLM start: it is slow)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.evaluation.predict_support import predict_spec, read_jsonl, reference_answers
from tests.serving.support import make_adapter
from tunery.engine.events import EventSink
from tunery.evaluation.runner import run_evaluation
from tunery.serving.engines.base import default_vllm_python
from tunery.serving.engines.registry import vllm_installed
from tunery.spec.events import EXIT_SUCCEEDED, EvalResultEvent

pytestmark = pytest.mark.skipif(
    not vllm_installed(default_vllm_python()), reason="vLLM is not installed: run `make vllm` (.venv-vllm)"
)


def test_vllm_greedy_answers_with_adapter(tiny_llama: Path, demo_data_dir: Path, tmp_path: Path) -> None:
    adapter = make_adapter(tiny_llama, tmp_path / "adapter", seed=7)
    spec = predict_spec(
        tiny_llama, demo_data_dir, tmp_path / "out", infer_backend="vllm", adapter_name_or_path=str(adapter),
        max_samples=8, max_new_tokens=10, per_device_eval_batch_size=4,
    )  # fmt: skip
    sink = EventSink(None)
    assert run_evaluation(spec, sink) == EXIT_SUCCEEDED, sink.events[-1]
    rows = read_jsonl(tmp_path / "out" / "generated_predictions.jsonl")
    assert [row["predict"] for row in rows] == reference_answers(spec, adapter)
    (result,) = [event for event in sink.events if isinstance(event, EvalResultEvent)]
    assert result.samples == 8 and result.metrics["length_max"] <= 10

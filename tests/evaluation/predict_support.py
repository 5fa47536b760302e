"""Helpers of the prediction tests: job specs, transformers' own greedy ``generate`` as the reference answer
(what LLaMA-Factory's predict calls); LoRA adapters with random weights come from the serving tests' helper."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunery.spec import JobSpec


def predict_spec(model: Path, data_dir: Path, output_dir: Path, **keys: Any) -> JobSpec:
    raw: dict[str, Any] = {
        "model_name_or_path": str(model),
        "template": "llama3",
        "do_train": False,
        "do_predict": True,
        "predict_with_generate": True,
        "eval_dataset": "alpaca_en_demo",
        "dataset_dir": str(data_dir),
        "max_samples": 6,
        "max_new_tokens": 12,
        "do_sample": False,
        "per_device_eval_batch_size": 4,
        "output_dir": str(output_dir),
        **keys,
    }
    return JobSpec.from_mapping(raw)


def reference_answers(spec: JobSpec, adapter: Path | None = None) -> list[str]:
    """transformers' greedy ``generate`` for each row alone (no padding), decoded without special tokens."""
    import torch
    from transformers import AutoModelForCausalLM

    from tunery.engine.train.data import load_template
    from tunery.engine.train.model import load_tokenizer
    from tunery.evaluation.predict_data import encode_options, encode_predict_rows, load_predict_examples
    from tunery.evaluation.predict_engine import stop_token_ids

    tokenizer = load_tokenizer(spec.model)
    template = load_template(spec, tokenizer)
    assert template is not None
    examples, _ = load_predict_examples(spec, None)
    options = encode_options(spec)
    rows = [row for part in examples.values() for row in encode_predict_rows(part, tokenizer, template, options)]
    model: Any = AutoModelForCausalLM.from_pretrained(spec.model.model_name_or_path, dtype=torch.float32)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    model.eval()
    stops = sorted(stop_token_ids(tokenizer, template))
    answers = []
    for row in rows:
        with torch.no_grad():
            out = model.generate(
                input_ids=torch.tensor([row.prompt_ids]),
                attention_mask=torch.ones(1, len(row.prompt_ids), dtype=torch.long),
                max_new_tokens=spec.generation.max_new_tokens,
                do_sample=False,
                eos_token_id=stops,
                pad_token_id=tokenizer.pad_token_id,
            )
        ids = out[0, len(row.prompt_ids) :].tolist()
        answers.append(tokenizer.decode([t for t in ids if t not in stops], skip_special_tokens=True))
    return answers


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

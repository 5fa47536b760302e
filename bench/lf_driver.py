"""Time LLaMA-Factory's SFT preprocessing: dataset loading + tokenization (``get_dataset``).

Runs inside bench/.venv-lf: ``bench/.venv-lf/bin/python bench/lf_driver.py JOB.yaml [...] --repeat 3``.
The job file is the same flat YAML ``llamafactory-cli train`` reads. Only ``get_dataset`` is timed (not
imports, argument parsing or the tokenizer load); every repeat reads the JSON files into a fresh
datasets cache folder and tokenizes again (``overwrite_cache``). Prints one ``BENCH_RESULT {json}`` line
per job.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml


def _timed(phases: dict[str, float], name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``func`` so the seconds it takes add up in ``phases[name]`` (behaviour unchanged)."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            phases[name] = phases.get(name, 0.0) + time.perf_counter() - start

    return wrapper


def non_pad_tokens(input_ids: Any, pad_id: int | None) -> int:
    return sum(len(ids) - (list(ids).count(pad_id) if pad_id is not None else 0) for ids in input_ids)


def preprocess(job: Path, repeat: int) -> dict[str, Any]:
    from llamafactory.data import get_dataset, get_template_and_fix_tokenizer, loader
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_tokenizer

    scratch = Path(tempfile.mkdtemp(prefix="lf-prep-"))
    raw = yaml.safe_load(job.read_text(encoding="utf-8"))
    raw.update(overwrite_cache=True, output_dir=str(scratch / "out"), overwrite_output_dir=True)
    model_args, data_args, training_args, finetuning_args, _ = get_train_args(raw)
    tokenizer_module = load_tokenizer(model_args)
    tokenizer = tokenizer_module["tokenizer"]
    template = get_template_and_fix_tokenizer(tokenizer, data_args)

    phases: dict[str, float] = {}
    # get_dataset looks these up in the module's globals at call time, so wrapping them there times them.
    merged, preprocessed = loader._get_merged_dataset, loader._get_preprocessed_dataset
    loader._get_merged_dataset = _timed(phases, "load", merged)
    loader._get_preprocessed_dataset = _timed(phases, "tokenize", preprocessed)
    runs = []
    try:
        for index in range(repeat):
            phases.clear()
            model_args.cache_dir = str(scratch / f"datasets-{index}")  # cold datasets cache every time
            start = time.perf_counter()
            stage = finetuning_args.stage
            module = get_dataset(template, model_args, data_args, training_args, stage, **tokenizer_module)
            seconds = time.perf_counter() - start
            train = module["train_dataset"]
            runs.append(
                {
                    "seconds": seconds,
                    "load_seconds": phases.get("load"),
                    "tokenize_seconds": phases.get("tokenize"),
                    "rows_out": len(train),
                    "tokens": non_pad_tokens(train["input_ids"], tokenizer.pad_token_id),
                }
            )
    finally:
        loader._get_merged_dataset, loader._get_preprocessed_dataset = merged, preprocessed
    return {"side": "llamafactory", "job": str(job), "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("jobs", type=Path, nargs="+")
    parser.add_argument("--repeat", type=int, default=1, help="timed calls per job in this process")
    args = parser.parse_args()
    for job in args.jobs:
        print("BENCH_RESULT " + json.dumps(preprocess(job, args.repeat)), flush=True)


if __name__ == "__main__":
    main()

"""Time Tunery's SFT preprocessing: data loading + tokenization (the engine's data and tokenize pipeline).

Runs in the project venv (``.venv/bin/python bench/tunery_driver.py JOB.yaml [...] --repeat 3``) on the
same flat YAML that LLaMA-Factory reads. Only loading and tokenizing are timed (not imports, spec parsing or
the tokenizer load); no token cache is used (``cache_dir=None``), so every repeat does the full work.
Prints one ``BENCH_RESULT {json}`` line per job. ``check`` instead of job files lists the engine entry points
the benchmark needs and which are still missing.
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
from pathlib import Path
from typing import Any

#: Engine entry points the benchmark calls: (module, attribute, what for).
HOOKS: list[tuple[str, str, str]] = [
    ("tunery.spec", "load_spec", "reads the job YAML (LF flat keys)"),
    ("tunery.engine.train.model", "load_tokenizer", "tokenizer of model_name_or_path"),
    ("tunery.engine.train.data", "load_template", "chat template named by data.template"),
    ("tunery.engine.data.load", "load_examples", "data layer called by the pipeline's load_data"),
    ("tunery.engine.tokenize.pipeline", "load_data", "timed phase 'load'"),
    ("tunery.engine.tokenize.pipeline", "tokenize_loaded", "timed phase 'tokenize'"),
    ("tunery.engine.train.runner", "run_training", "what `tunery train` runs"),
    ("tunery.cli.main", "main", "the `tunery` command"),
]


def missing_hooks() -> list[str]:
    """``module.attribute (why)`` for each hook that cannot be imported yet."""
    missing = []
    for module_name, attribute, why in HOOKS:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            missing.append(f"{module_name}.{attribute} ({why}): module does not import: {exc}")
            continue
        if not hasattr(module, attribute):
            missing.append(f"{module_name}.{attribute} ({why}): not defined")
    return missing


def non_pad_tokens(dataset: Any, pad_id: int | None) -> tuple[int, int]:
    """(rows, tokens that are not padding) of a tokenized dataset."""
    rows = tokens = 0
    for row in dataset:
        ids = list(row["input_ids"])
        rows += 1
        tokens += len(ids) - (ids.count(pad_id) if pad_id is not None else 0)
    return rows, tokens


def preprocess(job: Path, repeat: int) -> dict[str, Any]:
    from tunery.engine.tokenize.pipeline import load_data, tokenize_loaded
    from tunery.engine.train.data import load_template
    from tunery.engine.train.model import load_tokenizer
    from tunery.spec import load_spec

    spec = load_spec(job, ["overwrite_cache=true"])
    tokenizer = load_tokenizer(spec.model)
    template = load_template(spec, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        loaded = load_data(spec)
        loaded_at = time.perf_counter()
        data = tokenize_loaded(loaded, spec, tokenizer, template, cache_dir=None)
        end = time.perf_counter()
        rows, tokens = non_pad_tokens(data.train_dataset, pad_id)
        runs.append(
            {
                "seconds": end - start,
                "load_seconds": loaded_at - start,
                "tokenize_seconds": end - loaded_at,
                "rows_out": rows,
                "tokens": tokens,
            }
        )
    return {"side": "tunery", "job": str(job), "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("jobs", nargs="+", help="job YAML files, or 'check' to list missing entry points")
    parser.add_argument("--repeat", type=int, default=1, help="timed calls per job in this process")
    args = parser.parse_args()
    if args.jobs == ["check"]:
        print("BENCH_RESULT " + json.dumps({"side": "tunery", "missing": missing_hooks()}), flush=True)
        return
    for job in args.jobs:
        print("BENCH_RESULT " + json.dumps(preprocess(Path(job), args.repeat)), flush=True)


if __name__ == "__main__":
    main()

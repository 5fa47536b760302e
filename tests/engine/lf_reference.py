"""LLaMA-Factory's own tokenized rows for preference/RL jobs, for parity tests (not collected by pytest).

Runs inside bench/.venv-lf: ``bench/.venv-lf/bin/python tests/engine/lf_reference.py '<json>'`` where the
JSON is ``{"scratch": dir, "jobs": [{flat LF training keys}, ...]}``; writes ``scratch/rows.json``: per job,
the columns of ``get_dataset``'s train split (chosen/rejected input ids and labels, input ids and labels,
kto tags).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

COLUMNS = (
    "chosen_input_ids", "chosen_labels", "rejected_input_ids", "rejected_labels",
    "input_ids", "labels", "kto_tags",
)  # fmt: skip


def rows_of(job: dict[str, Any], scratch: Path, index: int) -> dict[str, Any]:
    from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_tokenizer

    raw = {
        "do_train": True,
        "finetuning_type": "lora",
        "output_dir": str(scratch / f"out-{index}"),
        "overwrite_output_dir": True,
        "overwrite_cache": True,
        "report_to": "none",
        "preprocessing_num_workers": None,
        **job,
    }
    model_args, data_args, training_args, finetuning_args, _ = get_train_args(raw)
    model_args.cache_dir = str(scratch / f"datasets-{index}")
    module = load_tokenizer(model_args)
    template = get_template_and_fix_tokenizer(module["tokenizer"], data_args)
    stage = "rm" if finetuning_args.stage == "dpo" else finetuning_args.stage  # LF's dpo workflow does so
    train = get_dataset(template, model_args, data_args, training_args, stage, **module)["train_dataset"]
    return {name: list(train[name]) for name in COLUMNS if name in train.column_names}


def main() -> None:
    request = json.loads(sys.argv[1])
    scratch = Path(request["scratch"])
    rows = [rows_of(job, scratch, index) for index, job in enumerate(request["jobs"])]
    (scratch / "rows.json").write_text(json.dumps(rows), encoding="utf-8")  # LF prints to stdout itself


if __name__ == "__main__":
    main()

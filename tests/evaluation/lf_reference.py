"""LLaMA-Factory's own prediction figures and rows, for parity tests (not collected by pytest).

Runs inside bench/.venv-lf: ``bench/.venv-lf/bin/python tests/evaluation/lf_reference.py '<json>'``
(or ``@request.json``) where the JSON is
``{"scratch": dir, "pairs": [[prediction, label], ...], "jobs": [{flat LF keys}, ...]}``; writes
``scratch/reference.json``:

- ``metrics``: LF's ``ComputeSimilarity`` (llamafactory/train/sft/metric.py) over the pairs, run on its own
  code path (a stub tokenizer decodes row ``i`` to the pair's texts): per-sample scores and the means.
- ``rows``: per job, the ``input_ids`` and ``labels`` of ``get_dataset``'s eval split for ``do_predict`` with
  ``predict_with_generate`` (LF's unsupervised processor).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


class _StubTokenizer:
    """Decodes row ``i`` of a prediction/label array to the ``i``-th text."""

    pad_token_id = -1

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts

    def batch_decode(self, rows: Any, skip_special_tokens: bool = True) -> list[str]:
        return [self.texts[int(row[0])] for row in rows]


def lf_metrics(pairs: list[list[str]]) -> dict[str, Any]:
    import numpy as np
    from llamafactory.train.sft.metric import ComputeSimilarity
    from transformers import EvalPrediction

    index = np.arange(len(pairs))[:, None]
    # the metric decodes predictions and labels with one tokenizer: predictions are texts [0, n), labels [n, 2n)
    texts = [p for p, _ in pairs] + [label for _, label in pairs]
    metric = ComputeSimilarity(tokenizer=_StubTokenizer(texts))
    metric(EvalPrediction(predictions=index, label_ids=index + len(pairs)), compute_result=False)
    per_sample = {key: list(values) for key, values in metric.score_dict.items()}
    return {"per_sample": per_sample, "means": metric._dump()}


def lf_rows(job: dict[str, Any], scratch: Path, index: int) -> dict[str, Any]:
    from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_tokenizer

    raw = {
        "stage": "sft",
        "do_train": False,
        "do_predict": True,
        "predict_with_generate": True,
        "finetuning_type": "lora",
        "output_dir": str(scratch / f"out-{index}"),
        "overwrite_output_dir": True,
        "overwrite_cache": True,
        "report_to": "none",
        **job,
    }
    model_args, data_args, training_args, _, _ = get_train_args(raw)
    model_args.cache_dir = str(scratch / f"datasets-{index}")
    module = load_tokenizer(model_args)
    template = get_template_and_fix_tokenizer(module["tokenizer"], data_args)
    evaluation = get_dataset(template, model_args, data_args, training_args, "sft", **module)["eval_dataset"]
    return {"input_ids": list(evaluation["input_ids"]), "labels": list(evaluation["labels"])}


def main() -> None:
    argument = sys.argv[1]  # the JSON, or @file holding it (large requests)
    request = json.loads(Path(argument[1:]).read_text(encoding="utf-8") if argument.startswith("@") else argument)
    scratch = Path(request["scratch"])
    out: dict[str, Any] = {}
    if request.get("pairs"):
        out["metrics"] = lf_metrics(request["pairs"])
    out["rows"] = [lf_rows(job, scratch, index) for index, job in enumerate(request.get("jobs", []))]
    (scratch / "reference.json").write_text(json.dumps(out), encoding="utf-8")  # LF prints to stdout itself


if __name__ == "__main__":
    main()

"""``tunery quickstart`` (what ``make up`` runs for now): LoRA-tune the demo model on the demo data."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from tunery.demo import DEMO_DATA_DIR
from tunery.spec import JobSpec
from tunery.spec.events import EXIT_SUCCEEDED


def quickstart_spec(model_dir: Path, output_dir: Path, steps: int) -> JobSpec:
    return JobSpec.from_mapping(
        {
            "model_name_or_path": str(model_dir),
            "stage": "sft",
            "finetuning_type": "lora",
            "lora_rank": 16,
            "lora_target": "all",
            "dataset": "tunery_identity",
            "dataset_dir": str(DEMO_DATA_DIR),
            "template": "auto",
            "cutoff_len": 256,
            "output_dir": str(output_dir),
            "overwrite_output_dir": True,
            "per_device_train_batch_size": 4,
            "learning_rate": 5e-4,
            "max_steps": steps,
            "lr_scheduler_type": "cosine",
            "warmup_ratio": 0.1,
            "logging_steps": 5,
            "save_steps": steps,
            "plot_loss": True,
        },
        source="quickstart",
    )


def quickstart(home: Path, steps: int, out: TextIO) -> int:
    from tunery.cli.progress import ProgressPrinter
    from tunery.engine.demo_model import ensure_demo_model
    from tunery.engine.events import EventSink
    from tunery.engine.train.runner import run_training

    out.write(f"Tunery quick start: data folder {home.resolve()}\n")
    out.write("Preparing the demo model (SmolLM2-135M-Instruct, converted once from GGUF)...\n")
    model_dir = ensure_demo_model(home / "models")
    output_dir = home / "runs" / "quickstart"
    spec = quickstart_spec(model_dir, output_dir, steps)
    out.write(spec.to_yaml())
    code = run_training(spec, EventSink(keep=False, listeners=[ProgressPrinter(sys.stderr)]))
    if code == EXIT_SUCCEEDED:
        out.write(f"\nDone. Adapter, loss curve and logs: {output_dir.resolve()}\n")
    return code

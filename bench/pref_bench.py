"""Preference and RL stages: DPO-LoRA against LLaMA-Factory 0.9.5, and GRPO's rollout + update throughput.

Run from the repository root with the project venv: ``.venv/bin/python bench/pref_bench.py``
(``make bench-pref``). Both sides train the same tiny Llama on ``dpo_en_demo`` from one flat YAML job file
(``llamafactory-cli train`` and ``tunery train`` read it unchanged), in fresh processes, alternating (ABBA).
Tokens/s counts the non-padding tokens of both sequences of every pair (prompt + chosen, prompt + rejected),
from Tunery's tokenization (the pair rows equal LF's: tests/engine/test_tokenize_preference.py), times the
epochs, over each side's own ``train_runtime``. The section "Preference and RL" of bench/RESULTS.md is
replaced; raw numbers go to bench/out/pref_results.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    BENCH,
    LF_CLI,
    NAMES,
    OUT,
    ROOT,
    SHARED_DATA,
    TUNERY_CLI,
    TUNERY_PY,
    bench_env,
    ensure_lf,
    ensure_model,
    log_tail,
    machine_info,
    rel,
    replace_section,
    run_measured,
    section_footer,
    versions,
)

TITLE = "Preference and RL"
TARGET_TPS = 1.2  # Tunery / LF tokens per second, DPO-LoRA
TARGET_RSS = 1.0  # Tunery / LF peak RSS


def dpo_job(model_dir: Path, max_samples: int) -> dict[str, Any]:
    return {
        "model_name_or_path": str(model_dir),
        "stage": "dpo",
        "do_train": True,
        "finetuning_type": "lora",
        "lora_rank": 8,
        "lora_target": "all",
        "pref_beta": 0.1,
        "pref_loss": "sigmoid",
        "dataset": "dpo_en_demo",
        "dataset_dir": str(SHARED_DATA),
        "template": "llama3",
        "cutoff_len": 512,
        "max_samples": max_samples,
        "overwrite_cache": True,
        "output_dir": str(OUT / "runs" / "unset"),
        "overwrite_output_dir": True,
        "per_device_train_batch_size": 2,
        "gradient_accumulation_steps": 1,
        "learning_rate": 5.0e-4,
        "num_train_epochs": 1.0,
        "lr_scheduler_type": "cosine",
        "logging_steps": 2,
        "save_strategy": "no",
        "report_to": "none",
        "bf16": False,
        "fp16": False,
        "seed": 42,
        "dataloader_num_workers": 0,
    }


def grpo_job(model_dir: Path, max_samples: int) -> dict[str, Any]:
    return {
        "model_name_or_path": str(model_dir),
        "stage": "grpo",
        "finetuning_type": "lora",
        "lora_target": "all",
        "dataset": "alpaca_en_demo",
        "dataset_dir": str(SHARED_DATA),
        "template": "llama3",
        "cutoff_len": 256,
        "max_samples": max_samples,
        "reward_funcs": [{"name": "exact_match"}, {"name": "length", "args": {"target": 16}}],
        "num_generations": 4,
        "max_completion_length": 32,
        "output_dir": str(OUT / "runs" / "unset"),
        "overwrite_output_dir": True,
        "per_device_train_batch_size": 8,
        "learning_rate": 1.0e-5,
        "num_train_epochs": 1.0,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "bf16": False,
        "seed": 42,
    }


def pair_tokens(job: Path) -> int:
    """Non-padding tokens of one epoch of the DPO job: prompt + chosen and prompt + rejected of every pair."""
    code = (
        "import sys\n"
        "from tunery.spec import load_spec\n"
        "from tunery.engine.train.model import load_tokenizer\n"
        "from tunery.engine.train.data import build_training_data, load_template\n"
        "spec = load_spec(sys.argv[1])\n"
        "tok = load_tokenizer(spec.model)\n"
        "data = build_training_data(spec, tok, load_template(spec, tok), None)\n"
        "rows = data.train_dataset\n"
        "print(sum(2 * len(r['prompt_ids']) + len(r['chosen_ids']) + len(r['rejected_ids'])"
        " for r in (rows[i] for i in range(len(rows)))))\n"
    )
    done = subprocess.run([str(TUNERY_PY), "-c", code, str(job)], capture_output=True, text=True, cwd=ROOT, check=True)
    return int(done.stdout.strip().splitlines()[-1])


def command(side: str, job: Path, output_dir: Path, scratch: Path) -> list[str]:
    override = f"output_dir={output_dir}"
    if side == "lf":
        return [str(LF_CLI), "train", str(job), override]
    events = output_dir.parent / f"{output_dir.name}.events.jsonl"
    return [str(TUNERY_CLI), "train", str(job), override, "--events", str(events), "--cache-dir", str(scratch)]


def losses(output_dir: Path) -> dict[int, float]:
    """Logged training loss per step, from the LF-format trainer_log.jsonl both sides write."""
    found: dict[int, float] = {}
    log = output_dir / "trainer_log.jsonl"
    if log.exists():
        for line in log.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            if record.get("loss") is not None:
                found[int(record["current_steps"])] = float(record["loss"])
    return found


def run_one(side: str, job: Path, name: str, runs_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    scratch = Path(tempfile.mkdtemp(prefix=f"pref-{side}-"))
    output_dir = runs_dir / name
    try:
        env = bench_env(args.threads, scratch)
        measured = run_measured(command(side, job, output_dir, scratch), env, runs_dir / f"{name}.log", args.timeout)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    record: dict[str, Any] = {"side": side, "name": name, "returncode": measured.returncode}
    record.update(wall_seconds=measured.wall_seconds, peak_rss_mb=measured.peak_rss_mb, log=rel(measured.log))
    results = output_dir / "train_results.json"
    if measured.returncode == 0 and results.exists():
        metrics = json.loads(results.read_text(encoding="utf-8"))
        record.update(train_runtime=metrics.get("train_runtime"), epoch=metrics.get("epoch"))
    else:
        record["tail"] = log_tail(measured.log)
    record["losses"] = losses(output_dir)
    state = output_dir / "trainer_state.json"
    if state.exists():
        history = json.loads(state.read_text(encoding="utf-8")).get("log_history", [])
        record["log_history"] = [entry for entry in history if "loss" in entry or "reward" in entry]
    print(
        f"[{name}] exit {measured.returncode}, {measured.wall_seconds:.1f} s, {measured.peak_rss_mb:.0f} MB", flush=True
    )
    return record


def med(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def fmt(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def dpo_summary(records: list[dict[str, Any]], side: str, tokens: int) -> dict[str, Any]:
    ok = [r for r in records if r["side"] == side and r["returncode"] == 0 and r.get("train_runtime")]
    tps = [tokens * float(r.get("epoch") or 1.0) / float(r["train_runtime"]) for r in ok]
    return {"tps": med(tps), "peak": med([r["peak_rss_mb"] for r in ok]), "wall": med([r["wall_seconds"] for r in ok])}


def curve_gap(records: list[dict[str, Any]]) -> tuple[float | None, float | None, float | None]:
    """(max |LF - Tunery| loss over the logged steps of the first run of each, LF mean, Tunery mean)."""
    firsts = {}
    for record in records:
        if record["returncode"] == 0 and record["side"] not in firsts:
            firsts[record["side"]] = {int(k): v for k, v in record["losses"].items()}
    if len(firsts) < 2:
        return None, None, None
    steps = sorted(set(firsts["lf"]) & set(firsts["tunery"]))
    if not steps:
        return None, None, None
    gap = max(abs(firsts["lf"][s] - firsts["tunery"][s]) for s in steps)
    return gap, statistics.mean(firsts["lf"][s] for s in steps), statistics.mean(firsts["tunery"][s] for s in steps)


def grpo_summary(record: dict[str, Any], job: dict[str, Any]) -> dict[str, Any]:
    history = record.get("log_history", [])
    steps = len([h for h in history if "reward" in h])
    completions = steps * int(job["per_device_train_batch_size"])
    runtime = record.get("train_runtime")
    tokens = sum(float(h.get("completions/mean_length", 0.0)) for h in history) * int(
        job["per_device_train_batch_size"]
    )
    return {
        "steps": steps,
        "completions_per_second": completions / runtime if runtime else None,
        "completion_tokens_per_second": tokens / runtime if runtime and tokens else None,
        "wall": record["wall_seconds"],
        "peak": record["peak_rss_mb"],
        "reward_first": history[0].get("reward") if history else None,
        "reward_last": history[-1].get("reward") if history else None,
    }


def render(data: dict[str, Any]) -> str:
    lf, tu, gap = data["dpo"]["lf"], data["dpo"]["tunery"], data["dpo"]["curve"]
    tps_ratio = tu["tps"] / lf["tps"] if tu["tps"] and lf["tps"] else None
    rss_ratio = tu["peak"] / lf["peak"] if tu["peak"] and lf["peak"] else None

    def verdict(value: float | None, target: float, higher: bool) -> str:
        if value is None:
            return "not measured"
        return "**met**" if (value >= target if higher else value <= target) else "**not met**"

    m = data["machine"]
    lines = [
        f"## {TITLE} ({data['started'][:10]})",
        "",
        f"`bench/pref_bench.py`, {m['cpu']}, {m['cores']} cores, load {m['load_before']} before the run; "
        f"torch threads {data['args']['threads']}; tiny Llama (tests/support/tiny_models.py), template llama3, "
        f"cutoff 512, {data['args']['max_samples']} rows of dpo_en_demo, LoRA r8 on all linear layers, batch 2, "
        f"1 epoch, fp32; {data['args']['runs']} fresh processes per side, ABBA order, medians. "
        f"{data['tokens']:,} non-padding tokens per epoch (both sequences of every pair).",
        "",
        "### DPO-LoRA (sigmoid, beta 0.1)",
        "",
        "| side | tokens/s | peak RSS (MB) | wall (s) |",
        "|---|---:|---:|---:|",
        f"| {NAMES['lf']} | {fmt(lf['tps'])} | {fmt(lf['peak'], 0)} | {fmt(lf['wall'])} |",
        f"| Tunery | {fmt(tu['tps'])} | {fmt(tu['peak'], 0)} | {fmt(tu['wall'])} |",
        f"| **Tunery / LF** | **{fmt(tps_ratio, 2)}×** | **{fmt(rss_ratio, 2)}×** | |",
        "",
        f"Targets: tokens/s ≥ {TARGET_TPS}× → {verdict(tps_ratio, TARGET_TPS, True)}; peak RSS ≤ {TARGET_RSS}× → "
        f"{verdict(rss_ratio, TARGET_RSS, False)}. Loss curve (first run of each side, every logged step): "
        f"largest |LF − Tunery| gap {fmt(gap[0], 4)}, mean loss LF {fmt(gap[1], 4)} / Tunery {fmt(gap[2], 4)}.",
        "",
    ]
    grpo = data.get("grpo")
    if grpo:
        lines += [
            "### GRPO rollout + update (Tunery only; LLaMA-Factory has no GRPO)",
            "",
            "alpaca_en_demo prompts, rewards exact_match + length, 4 generations per prompt, 32 new tokens, "
            "batch 8 completions, LoRA, transformers generation on the CPU. A throughput figure: the untrained tiny "
            "model never ends an answer early, so its rewards stay flat.",
            "",
            "| steps | completions/s | completion tokens/s | reward first → last | peak RSS (MB) | wall (s) |",
            "|---:|---:|---:|---|---:|---:|",
            f"| {grpo['steps']} | {fmt(grpo['completions_per_second'], 2)} | "
            f"{fmt(grpo['completion_tokens_per_second'], 1)} | {fmt(grpo['reward_first'], 3)} → "
            f"{fmt(grpo['reward_last'], 3)} | {fmt(grpo['peak'], 0)} | {fmt(grpo['wall'])} |",
            "",
        ]
    lines += section_footer(data, "bench/out/pref_results.json")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="processes per side (default 3)")
    parser.add_argument("--max-samples", type=int, default=40, help="dpo_en_demo rows (default 40)")
    parser.add_argument("--grpo-samples", type=int, default=16, help="alpaca_en_demo prompts for GRPO (0: skip)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for both sides (0: torch default)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds before a run is killed")
    parser.add_argument("--out", type=Path, default=BENCH / "RESULTS.md", help="report file")
    args = parser.parse_args()

    started = dt.datetime.now()
    runs_dir = OUT / "runs" / f"pref-{started.strftime('%Y%m%d-%H%M%S')}"
    jobs_dir = OUT / "jobs"
    jobs_dir.mkdir(parents=True, exist_ok=True)
    ensure_lf()
    model = ensure_model(OUT / "tiny-llama")
    job_path = jobs_dir / "dpo_lora.yaml"
    job_path.write_text(yaml.safe_dump(dpo_job(model, args.max_samples), sort_keys=False), encoding="utf-8")
    data: dict[str, Any] = {
        "started": started.isoformat(timespec="seconds"),
        "args": vars(args) | {"out": str(args.out)},
    }
    data["machine"] = machine_info()
    data["versions"] = versions()
    data["tokens"] = pair_tokens(job_path)

    records = []
    for index in range(args.runs):
        for side in ("lf", "tunery") if index % 2 == 0 else ("tunery", "lf"):
            records.append(run_one(side, job_path, f"dpo-{index}-{side}", runs_dir, args))
    data["dpo"] = {
        "lf": dpo_summary(records, "lf", data["tokens"]),
        "tunery": dpo_summary(records, "tunery", data["tokens"]),
        "curve": curve_gap(records),
    }
    if args.grpo_samples:
        grpo = grpo_job(model, args.grpo_samples)
        grpo_path = jobs_dir / "grpo_lora.yaml"
        grpo_path.write_text(yaml.safe_dump(grpo, sort_keys=False), encoding="utf-8")
        record = run_one("tunery", grpo_path, "grpo-tunery", runs_dir, args)
        records.append(record)
        if record["returncode"] == 0:
            data["grpo"] = grpo_summary(record, grpo)
    data["failures"] = [r for r in records if r["returncode"] != 0]
    data["records"] = records
    data["machine"]["load_after"] = machine_info()["load_before"]
    (OUT / "pref_results.json").write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    replace_section(args.out, TITLE, render(data))
    print(f"wrote {rel(args.out)} and {rel(OUT / 'pref_results.json')}", flush=True)


if __name__ == "__main__":
    main()

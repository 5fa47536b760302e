"""Data at scale: one SFT-LoRA step on synthetic alpaca files of 100k and 1M rows, Tunery against LLaMA-Factory 0.9.5.

Run from the repository root with the project venv: ``.venv/bin/python bench/data_bench.py`` (``make bench-data``).
The files are JSON arrays of alpaca rows (as LF users have them) written once into ``bench/out/data-scale/`` with a
``dataset_info.json``: each row takes the instruction / input / output word counts of a row of ``alpaca_en_demo``
drawn at random and fills them with words drawn from that field's words in the demo set (seeded numpy generator,
so the files are the same on every machine). One flat YAML job per size (tiny Llama, sft, LoRA, template llama3,
cutoff 512, batch 1, ``max_steps: 1``, ``overwrite_cache: true``, save_strategy no) is read unchanged by
``llamafactory-cli train`` and ``tunery train``; the ``preprocessing_num_workers: 2`` configurations add that
key on the command line. Each run is a fresh process with fresh caches (LF: ``HF_DATASETS_CACHE``, Tunery:
``--cache-dir``), so both sides read and tokenize every row. Measured: whole-process wall time and peak RSS
(``ru_maxrss`` from wait4: the largest single process, the workers it waited for included) and, sampled, the summed
PSS of the process tree. Extra Tunery-only rows on the validate-size file (200k rows): ``tunery validate`` and
``tunery train``. The section "Data at scale" of bench/RESULTS.md (``--out``) is replaced; raw numbers go to
bench/out/data_results.json (with another ``--out``: next to it, ``.json``). Smoke run:
``--rows 3000 6000 --validate-rows 4000 --out bench/out/data_smoke.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    LF_CLI,
    NAMES,
    OUT,
    ROOT,
    SHARED_DATA,
    TUNERY_CLI,
    bench_env,
    ensure_lf,
    ensure_model,
    log_tail,
    machine_info,
    rel,
    replace_section,
    section_footer,
    versions,
)

TITLE = "Data at scale"
RESULTS = ROOT / "bench" / "RESULTS.md"
DATA_DIR = OUT / "data-scale"
FIELDS = ("instruction", "input", "output")
GENERATOR_VERSION = 1  # bump when the generated rows change
#: configuration -> (side, preprocessing_num_workers, label)
CONFIGS: dict[str, tuple[str, int | None, str]] = {
    "lf": ("lf", None, f"{NAMES['lf']}, default"),
    "lf_w2": ("lf", 2, f"{NAMES['lf']}, preprocessing_num_workers 2"),
    "tunery": ("tunery", None, "Tunery, default"),
    "tunery_w2": ("tunery", 2, "Tunery, preprocessing_num_workers 2"),
}
LF_CONFIGS = ("lf", "lf_w2")
TARGET_WALL, TARGET_RSS, TARGET_SCALE = 0.5, 0.8, 1.3
SAMPLE_SECONDS = 0.25  # process-tree PSS sampling (psutil walks /proc: kept cheap on a shared machine)


# ---------------------------------------------------------------- synthetic data


def dataset_name(rows: int) -> str:
    return f"synthetic_alpaca_{rows}"


def write_synthetic(rows: int, seed: int) -> Path:
    """``bench/out/data-scale/alpaca_<rows>.json`` (made once per rows / seed / generator version)."""
    path = DATA_DIR / f"alpaca_{rows}.json"
    meta_path = path.with_suffix(".meta.json")
    meta = {"rows": rows, "seed": seed, "version": GENERATOR_VERSION, "demo": "alpaca_en_demo.json"}
    if path.exists() and meta_path.exists() and json.loads(meta_path.read_text(encoding="utf-8")) == meta:
        return path
    demo = json.loads((SHARED_DATA / "alpaca_en_demo.json").read_text(encoding="utf-8"))
    pools = {f: np.array([w for row in demo for w in row[f].split()], dtype=object) for f in FIELDS}
    lengths = np.array([[len(row[f].split()) for f in FIELDS] for row in demo], dtype=np.int64)
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    with partial.open("w", encoding="utf-8") as handle:
        handle.write("[\n")
        for chunk_start in range(0, rows, 10_000):
            n = min(10_000, rows - chunk_start)
            picks = lengths[rng.integers(0, len(lengths), size=n)]
            texts: dict[str, list[str]] = {}
            for j, name in enumerate(FIELDS):
                counts = picks[:, j]
                words = pools[name][rng.integers(0, len(pools[name]), size=int(counts.sum()))].tolist()
                ends = np.cumsum(counts).tolist()
                texts[name] = [" ".join(words[e - c : e]) for e, c in zip(ends, counts.tolist(), strict=True)]
            lines = [json.dumps({f: texts[f][i] for f in FIELDS}, ensure_ascii=False) for i in range(n)]
            handle.write(("" if chunk_start == 0 else ",\n") + ",\n".join(lines))
        handle.write("\n]\n")
    partial.rename(path)
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    size = path.stat().st_size / 2**20
    print(f"wrote {rel(path)}: {rows:,} rows, {size:,.0f} MB in {time.perf_counter() - started:.0f} s", flush=True)
    return path


def write_dataset_info(sizes: list[int]) -> None:
    """dataset_info.json naming every generated file (kept entries of other sizes stay)."""
    info_path = DATA_DIR / "dataset_info.json"
    info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.exists() else {}
    info.update({dataset_name(rows): {"file_name": f"alpaca_{rows}.json"} for rows in sizes})
    info_path.write_text(json.dumps(info, indent=2, sort_keys=True), encoding="utf-8")


def data_job(model_dir: Path, rows: int) -> dict[str, Any]:
    """The flat LLaMA-Factory-style job both sides read (output_dir and workers are set per run)."""
    return {
        "model_name_or_path": str(model_dir),
        "stage": "sft",
        "do_train": True,
        "finetuning_type": "lora",
        "lora_rank": 8,
        "lora_target": "all",
        "dataset": dataset_name(rows),
        "dataset_dir": str(DATA_DIR),
        "template": "llama3",
        "cutoff_len": 512,
        "overwrite_cache": True,
        "output_dir": str(OUT / "runs" / "unset"),
        "overwrite_output_dir": True,
        "per_device_train_batch_size": 1,
        "gradient_accumulation_steps": 1,
        "learning_rate": 1.0e-4,
        "max_steps": 1,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "bf16": False,
        "fp16": False,
        "seed": 42,
        "dataloader_num_workers": 0,
    }


# ---------------------------------------------------------------- measuring


def run_tree(command: list[str], env: dict[str, str], log: Path, timeout: float) -> dict[str, Any]:
    """Wall time, ru_maxrss (wait4: largest single process, waited-for children included) and the sampled peak of
    the process tree's summed PSS (proportional set size: pages a forked worker shares with its parent count once;
    summed RSS would count them in every process)."""
    import psutil

    log.parent.mkdir(parents=True, exist_ok=True)
    tree_peak, timed_out = 0, False
    load = os.getloadavg()[0]
    with log.open("w", encoding="utf-8") as handle:
        start = time.perf_counter()
        proc = subprocess.Popen(
            command, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True
        )
        top = psutil.Process(proc.pid)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            with contextlib.suppress(psutil.Error):
                members = [top, *top.children(recursive=True)]
                total = 0
                for member in members:
                    with contextlib.suppress(psutil.Error):
                        total += member.memory_full_info().pss  # shared pages of forked workers counted once
                tree_peak = max(tree_peak, total)
            if time.perf_counter() - start > timeout:
                os.killpg(proc.pid, signal.SIGKILL)
                pid, status, usage = os.wait4(proc.pid, 0)
                timed_out = True
                break
            time.sleep(SAMPLE_SECONDS)
        wall = time.perf_counter() - start
    maxrss = usage.ru_maxrss / 1024
    return {
        "returncode": os.waitstatus_to_exitcode(status),
        "wall_seconds": wall,
        "peak_rss_mb": maxrss,
        "tree_pss_mb": tree_peak / 2**20,
        "load_1min": [round(load, 2), round(os.getloadavg()[0], 2)],
        "timed_out": timed_out,
        "command": command,
        "log": rel(log),
    }


def command(kind: str, config: str, job: Path, output_dir: Path, scratch: Path) -> list[str]:
    side, workers, _ = CONFIGS[config]
    extra = [f"preprocessing_num_workers={workers}"] if workers else []
    if kind == "validate":
        return [str(TUNERY_CLI), "validate", str(job), *extra]
    override = f"output_dir={output_dir}"
    if side == "lf":
        return [str(LF_CLI), "train", str(job), override, *extra]
    events = output_dir.parent / f"{output_dir.name}.events.jsonl"
    cache = ["--cache-dir", str(scratch / "tunery-cache")]
    return [str(TUNERY_CLI), "train", str(job), override, *extra, "--events", str(events), *cache]


def run_one(kind: str, config: str, rows: int, job: Path, runs_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    name = f"{kind}-{rows}-{config}-{len(list(runs_dir.glob(f'{kind}-{rows}-{config}-*.log')))}"
    output_dir = runs_dir / name
    began = time.time()
    scratch = Path(tempfile.mkdtemp(prefix=f"data-{config}-", dir=args.scratch))
    try:
        measured = run_tree(
            command(kind, config, job, output_dir, scratch),
            bench_env(args.threads, scratch),
            runs_dir / f"{name}.log",
            args.timeout,
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(output_dir, ignore_errors=True)  # an adapter of the tiny model: nothing to keep
    record = {"kind": kind, "config": config, "rows": rows, "name": name, **measured}
    record["until_started_seconds"] = until_started(output_dir.parent / f"{name}.events.jsonl", began)
    if measured["returncode"] != 0:
        record["tail"] = log_tail(str(ROOT / measured["log"]))
    print(
        f"[{name}] exit {record['returncode']}, {record['wall_seconds']:.1f} s, ru_maxrss "
        f"{record['peak_rss_mb']:.0f} MB, tree PSS {record['tree_pss_mb']:.0f} MB, load {record['load_1min']}",
        flush=True,
    )
    return record


def until_started(events: Path, began: float) -> float | None:
    """Seconds from process start to Tunery's ``started`` event (imports, data, tokenizing, model load)."""
    if not events.exists():
        return None
    for line in events.read_text(encoding="utf-8").splitlines():
        event = json.loads(line)
        if event.get("type") == "started":
            return round(dt.datetime.fromisoformat(event["time"].replace("Z", "+00:00")).timestamp() - began, 2)
    return None


# ---------------------------------------------------------------- report


def med(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def fmt(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def summarize(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Medians per (kind, rows, config) of the successful runs."""
    order = list(CONFIGS)
    keys = sorted({(r["kind"], r["rows"], r["config"]) for r in records},
                  key=lambda k: (k[0] != "train", k[1], order.index(k[2])))  # fmt: skip
    rows = []
    for kind, size, config in keys:
        ok = [r for r in records if (r["kind"], r["rows"], r["config"]) == (kind, size, config)]
        ok = [r for r in ok if r["returncode"] == 0]
        rows.append({
            "kind": kind, "rows": size, "config": config, "runs": len(ok),
            "wall": med([r["wall_seconds"] for r in ok]),
            "rss": med([r["peak_rss_mb"] for r in ok]),
            "tree": med([r["tree_pss_mb"] for r in ok]),
            "until_started": med([r["until_started_seconds"] for r in ok if r.get("until_started_seconds")]),
        })  # fmt: skip
    return rows


def find(summary: list[dict[str, Any]], kind: str, rows: int, config: str) -> dict[str, Any]:
    empty = {"wall": None, "rss": None, "tree": None, "runs": 0}
    return next((s for s in summary if (s["kind"], s["rows"], s["config"]) == (kind, rows, config)), empty)


def verdict(value: float | None, target: float) -> str:
    return "not measured" if value is None else ("**met**" if value <= target else "**not met**")


#: Each LLaMA-Factory configuration against Tunery in the same configuration (the same preprocessing workers).
PAIRS = (("tunery", "lf"), ("tunery_w2", "lf_w2"))


def target_lines(summary: list[dict[str, Any]], sizes: list[int]) -> list[str]:
    lines = []
    for size in sizes:
        for mine, lf in PAIRS:
            ours, theirs = find(summary, "train", size, mine), find(summary, "train", size, lf)
            wall, rss = ratio(ours["wall"], theirs["wall"]), ratio(ours["rss"], theirs["rss"])
            tree = ratio(ours["tree"], theirs["tree"])
            lines.append(
                f"- {size:,} rows, {CONFIGS[mine][2]} vs {CONFIGS[lf][2]}: wall {fmt(wall, 2)}× (≤ {TARGET_WALL}×) → "
                f"{verdict(wall, TARGET_WALL)}; peak RSS {fmt(rss, 2)}× (≤ {TARGET_RSS}×) → "
                f"{verdict(rss, TARGET_RSS)} (process tree PSS {fmt(tree, 2)}×)"
            )
    if len(sizes) > 1:
        small, large = find(summary, "train", sizes[0], "tunery"), find(summary, "train", sizes[-1], "tunery")
        scale = ratio(large["rss"], small["rss"])
        lines.append(
            f"- Tunery's own peak RSS at {sizes[-1]:,} rows / at {sizes[0]:,} rows: {fmt(scale, 2)}× (≤ "
            f"{TARGET_SCALE}×) → {verdict(scale, TARGET_SCALE)} (process tree PSS "
            f"{fmt(ratio(large['tree'], small['tree']), 2)}×)"
        )
    return lines


def render(data: dict[str, Any]) -> str:
    m, a, summary = data["machine"], data["args"], data["summary"]
    sizes = sorted(a["rows"])
    files = ", ".join(f"{rows:,} rows {mb:,.0f} MB" for rows, mb in data["file_mb"].items())
    lines = [
        f"## {TITLE} ({data['started'][:10]})",
        "",
        f"`bench/data_bench.py`, {m['cpu']}, {m['cores']} cores, {m['memory']}, load {m['load_before']} before and "
        f"{m.get('load_after')} after the run (1-min load at each run's start and end in the raw numbers); torch "
        f"threads {a['threads'] or 'default'}. Synthetic alpaca JSON arrays ({files}; word counts of random "
        "alpaca_en_demo rows filled with that field's demo words, seed "
        f"{a['seed']}). One YAML job per size (`bench/out/jobs/data_<rows>.yaml`): tiny Llama, sft, LoRA r8 all "
        "linear layers, template llama3, cutoff 512, batch 1, `max_steps: 1`, `overwrite_cache: true`, "
        "save_strategy no; `preprocessing_num_workers=2` added on the command line for the *workers 2* rows. "
        f"{a['runs']} fresh process(es) per configuration (medians), configurations rotating, fresh caches "
        "(HF_DATASETS_CACHE / `--cache-dir`) every run, so every run reads and tokenizes every row. Wall: the "
        "whole command. Peak RSS: `ru_maxrss` from wait4 (largest single process, waited-for workers included; "
        "what the targets use); tree PSS: the summed proportional set size of the process and its children, "
        f"sampled every {SAMPLE_SECONDS} s (worker processes counted together, the pages they share with their "
        "parent once). Tunery tokenizes in one process below 16,384 "
        "rows whatever `preprocessing_num_workers` says; LF forks its `datasets.map` workers at any size.",
        "",
        "| configuration | command | rows | runs | wall s | × LF | × LF w2 | peak RSS MB | × LF | × LF w2 "
        "| tree PSS MB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in summary:
        lf, lf2 = find(summary, "train", s["rows"], "lf"), find(summary, "train", s["rows"], "lf_w2")
        label = CONFIGS[s["config"]][2]
        if s["kind"] == "validate":
            label = "Tunery"
        compared = s["kind"] == "train"
        lines.append(
            f"| {label} | {s['kind']} | {s['rows']:,} | {s['runs']} | {fmt(s['wall'])} "
            f"| {fmt(ratio(s['wall'], lf['wall']), 2) if compared else ''} "
            f"| {fmt(ratio(s['wall'], lf2['wall']), 2) if compared else ''} | {fmt(s['rss'], 0)} "
            f"| {fmt(ratio(s['rss'], lf['rss']), 2) if compared else ''} "
            f"| {fmt(ratio(s['rss'], lf2['rss']), 2) if compared else ''} | {fmt(s['tree'], 0)} |"
        )
    starts = [
        f"{CONFIGS[s['config']][2].removeprefix('Tunery, ')} {s['rows']:,} rows {fmt(s['until_started'])} s"
        for s in summary
        if s.get("until_started")
    ]
    if starts:
        lines += ["", "Tunery, process start → training starts (imports, reading, validating, tokenizing, model "
                  "load; from its `started` event): " + "; ".join(starts) + "."]  # fmt: skip
    lines += [
        "",
        "Targets (Tunery / LF in the same configuration, wall time and peak RSS, at each size; the table has "
        "the cross ratios too):",
        "",
    ]
    lines += [*target_lines(summary, sizes), ""]
    lines += section_footer(data, data["raw"])
    return "\n".join(lines)


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000], help="file sizes (rows)")
    parser.add_argument("--validate-rows", type=int, default=200_000, help="rows of the validate file (0: skip)")
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"configurations (default {','.join(CONFIGS)})")
    parser.add_argument("--runs", type=int, default=1, help="fresh processes per configuration and size (default 1)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for every side (0: torch default)")
    parser.add_argument("--timeout", type=float, default=7200, help="seconds before a run is killed")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic rows")
    parser.add_argument("--scratch", type=Path, default=None, help="folder for the per-run caches (default: $TMPDIR)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="report file")
    args = parser.parse_args()
    configs = [c for c in args.configs.split(",") if c]
    if unknown := set(configs) - set(CONFIGS):
        parser.error(f"unknown configurations: {sorted(unknown)}")
    args.rows = sorted(set(args.rows))

    started = dt.datetime.now()
    runs_dir = OUT / "runs" / f"data-{started.strftime('%Y%m%d-%H%M%S')}"
    if any(CONFIGS[c][0] == "lf" for c in configs):
        ensure_lf()
    model = ensure_model(OUT / "tiny-llama")
    all_sizes = sorted({*args.rows, *([args.validate_rows] if args.validate_rows else [])})
    files = {rows: write_synthetic(rows, args.seed) for rows in all_sizes}
    write_dataset_info(all_sizes)
    jobs: dict[int, Path] = {}
    for rows in all_sizes:
        jobs[rows] = OUT / "jobs" / f"data_{rows}.yaml"
        jobs[rows].parent.mkdir(parents=True, exist_ok=True)
        jobs[rows].write_text(yaml.safe_dump(data_job(model, rows), sort_keys=False), encoding="utf-8")
    # a report elsewhere than RESULTS.md (a smoke run) keeps its raw numbers next to it
    raw = OUT / "data_results.json" if args.out == RESULTS else args.out.with_suffix(".json")
    data: dict[str, Any] = {
        "raw": rel(raw),
        "started": started.isoformat(timespec="seconds"),
        "args": vars(args) | {"out": str(args.out), "scratch": str(args.scratch)},
        "file_mb": {rows: round(path.stat().st_size / 2**20, 1) for rows, path in files.items()},
        "jobs": {rows: rel(path) for rows, path in jobs.items()},
    }
    data["machine"] = machine_info()
    data["versions"] = versions()

    records: list[dict[str, Any]] = []
    turn = 0
    for rows in args.rows:
        for _ in range(args.runs):
            order = configs[turn % len(configs) :] + configs[: turn % len(configs)]
            turn += 1
            for config in order:
                records.append(run_one("train", config, rows, jobs[rows], runs_dir, args))
    if args.validate_rows:
        for _ in range(args.runs):
            records.append(run_one("validate", "tunery", args.validate_rows, jobs[args.validate_rows], runs_dir, args))
            if args.validate_rows not in args.rows and "tunery" in configs:
                records.append(run_one("train", "tunery", args.validate_rows, jobs[args.validate_rows], runs_dir, args))
    data["summary"] = summarize(records)
    data["failures"] = [r for r in records if r["returncode"] != 0]
    data["records"] = records
    data["machine"]["load_after"] = machine_info()["load_before"]
    data["finished"] = dt.datetime.now().isoformat(timespec="seconds")
    raw.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    replace_section(args.out, TITLE, render(data))
    print(f"wrote {rel(args.out)} and {rel(raw)}", flush=True)


if __name__ == "__main__":
    main()

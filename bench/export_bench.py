"""Export: merge a LoRA adapter into the demo model and write GGUF F16 + Q4_K_M, Tunery against LLaMA-Factory 0.9.5.

Run from the repository root with the project venv: ``.venv/bin/python bench/export_bench.py``
(``make bench-export``). Model: the demo model (SmolLM2-135M-Instruct, converted to safetensors by
``tunery.engine.demo_model``, float32) with a LoRA adapter made here (r 8, alpha 16, every linear layer of the
decoder, peft's A initialisation and B drawn from N(0, 0.01^2) with a fixed seed: non-zero, so the merge changes
every targeted weight). One flat YAML job in LF's merge_lora shape (model, adapter, template, finetuning_type,
export_dir/size/device/legacy_format) is read unchanged by both sides:

- Tunery: one ``tunery export`` process writing the merged model (hf), ``model-F16.gguf`` and ``model-Q4_K_M.gguf``
  (``export_verify=false``, the same work as LF's sequence); a second row with ``export_verify=true`` (the
  loads back and greedy/perplexity checks) is informative.
- LF, as its docs say: ``llamafactory-cli export`` (merge only), then by hand llama.cpp's
  ``convert_hf_to_gguf.py <merged> --outtype f16``, then the Q4_K_M quantization with llama.cpp's quantizer
  (``llama_cpp.llama_model_quantize``: PyPI ships no llama-quantize binary). The converter copy and the quantizer
  are the ones Tunery uses (.venv/share/tunery/llama.cpp, llama-cpp-python), run with the project venv's python
  (it has their dependencies), so only the merge differs between the sides.

Time: wall time of the process (LF: the sum of the three). Memory: the peak of the summed RSS of the process
tree, sampled every 50 ms (Tunery's converter and quantizer run as children while the exporting process lives; LF:
the max over its three processes), and ``ru_maxrss`` of the largest single process (from wait4, children
included). Sides rotate, medians. The outputs are compared: merged safetensors tensor by tensor, GGUF files tensor
names, types and data. The section "Export" of bench/RESULTS.md is replaced; raw numbers go to
bench/out/export_results.json.
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

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    LF_CLI,
    NAMES,
    OUT,
    ROOT,
    TUNERY_CLI,
    TUNERY_PY,
    bench_env,
    ensure_lf,
    log_tail,
    machine_info,
    rel,
    replace_section,
    section_footer,
    versions,
)

TITLE = "Export"
SIDES = ("lf", "tunery", "tunery_verify")
LABELS = {
    "lf": f"{NAMES['lf']}: export + convert_hf_to_gguf F16 + quantize Q4_K_M",
    "tunery": "Tunery: `tunery export` (hf, gguf F16 + Q4_K_M)",
    "tunery_verify": "Tunery, export_verify true (informative)",
}
TARGET = 1.0  # Tunery / LF, time and peak memory
LLAMA_CPP = ROOT / ".venv" / "share" / "tunery" / "llama.cpp"
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
SAMPLE_SECONDS = 0.05
QUANTIZE = (
    "import ctypes, os, sys, llama_cpp\n"
    "p = llama_cpp.llama_model_quantize_default_params()\n"
    "p.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M\n"
    "p.nthread = os.cpu_count() or 1\n"
    "sys.exit(llama_cpp.llama_model_quantize(sys.argv[1].encode(), sys.argv[2].encode(), ctypes.byref(p)))\n"
)


# ---------------------------------------------------------------- model and adapter (run in a child process)


def prepare(seed: int) -> None:
    """The demo model in safetensors and the LoRA adapter (made once; printed as JSON)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from tunery.engine.demo_model import ensure_demo_model

    model_dir = ensure_demo_model(OUT / "models")
    adapter = OUT / "models" / "export-lora"
    if not (adapter / "adapter_config.json").exists():
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        config = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=LORA_TARGETS, task_type="CAUSAL_LM")
        peft_model = get_peft_model(model, config)
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, param in peft_model.named_parameters():
                if "lora_B" in name:
                    param.copy_(torch.randn(param.shape, generator=generator) * 0.01)
        partial = adapter.with_name(adapter.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        peft_model.save_pretrained(str(partial))
        partial.rename(adapter)
    print(json.dumps({"model": str(model_dir), "adapter": str(adapter)}))


def prepared(seed: int) -> dict[str, str]:
    command = [str(TUNERY_PY), __file__, "--prepare", "--seed", str(seed)]
    done = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT, timeout=1800)
    found: dict[str, str] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def export_job(model: str, adapter: str) -> dict[str, Any]:
    """LLaMA-Factory's merge_lora example shape (export_dir is set per run on the command line)."""
    return {
        "model_name_or_path": model,
        "adapter_name_or_path": adapter,
        "template": "chatml",
        "finetuning_type": "lora",
        "export_dir": str(OUT / "runs" / "unset"),
        "export_size": 5,
        "export_device": "cpu",
        "export_legacy_format": False,
    }


# ---------------------------------------------------------------- measuring a process tree


def run_tree(command: list[str], env: dict[str, str], log: Path, timeout: float) -> dict[str, Any]:
    """Wall time, peak summed RSS of the process tree (sampled) and ru_maxrss (largest process, from wait4)."""
    import psutil

    log.parent.mkdir(parents=True, exist_ok=True)
    tree_peak = 0
    timed_out = False
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
            tree_peak = max(tree_peak, tree_rss(top))
            if time.perf_counter() - start > timeout:
                os.killpg(proc.pid, signal.SIGKILL)
                pid, status, usage = os.wait4(proc.pid, 0)
                timed_out = True
                break
            time.sleep(SAMPLE_SECONDS)
        wall = time.perf_counter() - start
    maxrss_mb = usage.ru_maxrss / 1024
    return {
        "command": command,
        "returncode": os.waitstatus_to_exitcode(status),
        "wall_seconds": wall,
        "tree_peak_mb": max(tree_peak / 2**20, maxrss_mb),
        "maxrss_mb": maxrss_mb,
        "log": rel(log),
        "timed_out": timed_out,
    }


def tree_rss(top: Any) -> int:
    """Summed RSS of ``top`` (a psutil.Process) and its descendants alive now."""
    import psutil

    total = 0
    with contextlib.suppress(psutil.Error):
        for member in [top, *top.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                total += member.memory_info().rss
    return int(total)


# ---------------------------------------------------------------- the sides


def steps(side: str, job: Path, export_dir: Path) -> list[tuple[str, list[str]]]:
    if side == "lf":
        f16, q4 = export_dir / "model-F16.gguf", export_dir / "model-Q4_K_M.gguf"
        convert = [str(TUNERY_PY), str(LLAMA_CPP / "convert_hf_to_gguf.py"), str(export_dir)]
        return [
            ("merge", [str(LF_CLI), "export", str(job), f"export_dir={export_dir}"]),
            ("convert F16", [*convert, "--outtype", "f16", "--outfile", str(f16)]),
            ("quantize Q4_K_M", [str(TUNERY_PY), "-c", QUANTIZE, str(f16), str(q4)]),
        ]
    verify = "true" if side == "tunery_verify" else "false"
    events = export_dir.parent / f"{export_dir.name}.events.jsonl"
    events.unlink(missing_ok=True)  # the engine appends to an events file
    overrides = [f"export_dir={export_dir}", "export_formats=hf,gguf", "export_gguf_types=F16,Q4_K_M"]
    command = [str(TUNERY_CLI), "export", str(job), *overrides, f"export_verify={verify}", "--events", str(events)]
    return [("export", command)]


def phases(events: Path) -> dict[str, float]:
    """Seconds of each phase of a Tunery export, from its events (start-up = process start to ``started``)."""
    if not events.exists():
        return {}
    titles: dict[int, str] = {}
    ends: list[tuple[int, float]] = []
    for line in events.read_text(encoding="utf-8").splitlines():
        event = json.loads(line)
        message = event.get("message") or ""
        if event.get("type") == "log" and message.startswith("[") and "] " in message:
            titles[int(message[1 : message.index("/")])] = message.split("] ", 1)[1]
        elif event.get("type") == "progress":
            ends.append((int(event["step"]), float(event["elapsed_seconds"])))
    out, previous = {}, 0.0
    for step, elapsed in ends:
        out[titles.get(step, f"phase {step}")] = round(elapsed - previous, 2)
        previous = elapsed
    return out


def run_one(side: str, job: Path, name: str, runs_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    scratch = Path(tempfile.mkdtemp(prefix=f"export-{side}-"))
    export_dir = runs_dir / name
    record: dict[str, Any] = {"side": side, "name": name, "steps": [], "export_dir": str(export_dir)}
    load = os.getloadavg()[0]
    try:
        env = bench_env(args.threads, scratch)
        for title, command in steps(side, job, export_dir):
            measured = run_tree(command, env, runs_dir / f"{name}.{title.split()[0]}.log", args.timeout)
            record["steps"].append({"step": title, **measured})
            if measured["returncode"] != 0:
                record["tail"] = log_tail(str(ROOT / measured["log"]))
                break
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    done = record["steps"]
    record["returncode"] = next((s["returncode"] for s in done if s["returncode"] != 0), 0)
    record["wall_seconds"] = sum(s["wall_seconds"] for s in done)
    record["tree_peak_mb"] = max(s["tree_peak_mb"] for s in done)
    record["maxrss_mb"] = max(s["maxrss_mb"] for s in done)
    record["load_1min"] = [round(load, 2), round(os.getloadavg()[0], 2)]
    if side != "lf":
        found = phases(export_dir.parent / f"{name}.events.jsonl")
        rest = round(record["wall_seconds"] - sum(found.values()), 2)
        record["phases"] = {"start-up (imports, spec, tokenizer)": rest, **found} if found else {}
        results = export_dir / "export_results.json"
        if results.exists():
            record["engine_peak_rss_mb"] = json.loads(results.read_text())["peak_rss_bytes"] / 2**20
    print(
        f"[{name}] exit {record['returncode']}, {record['wall_seconds']:.1f} s, tree peak {record['tree_peak_mb']:.0f} "
        f"MB, largest process {record['maxrss_mb']:.0f} MB, load {record['load_1min']}",
        flush=True,
    )
    return record


# ---------------------------------------------------------------- are the outputs the same


def compare_merged(a: Path, b: Path) -> dict[str, Any]:
    from safetensors import safe_open

    files_a, files_b = sorted(p.name for p in a.glob("*.safetensors")), sorted(p.name for p in b.glob("*.safetensors"))
    out: dict[str, Any] = {"files_equal": files_a == files_b, "files": files_a}
    handles_a = [safe_open(str(a / f), framework="numpy") for f in files_a]
    handles_b = [safe_open(str(b / f), framework="numpy") for f in files_b]
    keys_a = {k: h for h in handles_a for k in h.keys()}  # noqa: SIM118 (safe_open is not a mapping)
    keys_b = {k: h for h in handles_b for k in h.keys()}  # noqa: SIM118
    out["tensors"] = len(keys_a)
    out["names_equal"] = set(keys_a) == set(keys_b)
    diff, dtypes_equal, identical = 0.0, True, 0
    for key in sorted(set(keys_a) & set(keys_b)):
        x, y = keys_a[key].get_tensor(key), keys_b[key].get_tensor(key)
        dtypes_equal &= x.dtype == y.dtype and x.shape == y.shape
        if x.shape == y.shape:
            delta = float(abs(x.astype("float64") - y.astype("float64")).max()) if x.size else 0.0
            diff = max(diff, delta)
            identical += int(delta == 0.0)
    out.update(dtypes_equal=dtypes_equal, max_abs_diff=diff, identical_tensors=identical)
    out["dtype"] = str(next(iter(keys_a.values())).get_tensor(next(iter(keys_a))).dtype) if keys_a else None
    return out


def compare_gguf(a: Path, b: Path) -> dict[str, Any]:
    from gguf import GGUFReader

    if not (a.exists() and b.exists()):
        return {"missing": [str(p) for p in (a, b) if not p.exists()]}
    ra, rb = GGUFReader(str(a)), GGUFReader(str(b))
    ta, tb = {t.name: t for t in ra.tensors}, {t.name: t for t in rb.tensors}
    types_a = {name: t.tensor_type.name for name, t in ta.items()}
    types_b = {name: t.tensor_type.name for name, t in tb.items()}
    identical = sum(1 for name in set(ta) & set(tb) if ta[name].data.tobytes() == tb[name].data.tobytes())
    counts: dict[str, int] = {}
    for kind in types_a.values():
        counts[kind] = counts.get(kind, 0) + 1
    keys_a, keys_b = set(ra.fields), set(rb.fields)
    differing = sorted(k for k in keys_a & keys_b if _field(ra, k) != _field(rb, k))
    return {
        "tensors": [len(ta), len(tb)],
        "names_equal": set(ta) == set(tb),
        "types_equal": types_a == types_b,
        "types": counts,
        "identical_tensors": identical,
        "size_bytes": [a.stat().st_size, b.stat().st_size],
        "metadata_only_in_one": sorted(keys_a ^ keys_b),
        "metadata_differing": differing,
    }


def _field(reader: Any, key: str) -> Any:
    try:
        return reader.fields[key].contents()
    except (ValueError, TypeError, IndexError):
        return [bytes(part).hex() for part in reader.fields[key].parts]


def compare(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Tunery's first successful export (export_verify false) against LF's first successful sequence."""
    lf = next((r for r in records if r["side"] == "lf" and r["returncode"] == 0), None)
    ours = next((r for r in records if r["side"] == "tunery" and r["returncode"] == 0), None)
    if lf is None or ours is None:
        return {}
    a, b = Path(ours["export_dir"]), Path(lf["export_dir"])
    return {
        "tunery": rel(a),
        "lf": rel(b),
        "merged": compare_merged(a, b),
        "gguf_F16": compare_gguf(a / "model-F16.gguf", b / "model-F16.gguf"),
        "gguf_Q4_K_M": compare_gguf(a / "model-Q4_K_M.gguf", b / "model-Q4_K_M.gguf"),
    }


# ---------------------------------------------------------------- report


def med(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def fmt(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def summary(records: list[dict[str, Any]], side: str) -> dict[str, Any]:
    ok = [r for r in records if r["side"] == side and r["returncode"] == 0]
    step_names = [s["step"] for s in ok[0]["steps"]] if ok else []
    return {
        "runs": len(ok),
        "wall": med([r["wall_seconds"] for r in ok]),
        "tree_peak": med([r["tree_peak_mb"] for r in ok]),
        "maxrss": med([r["maxrss_mb"] for r in ok]),
        "steps": {
            n: {
                "wall": med([s["wall_seconds"] for r in ok for s in r["steps"] if s["step"] == n]),
                "tree_peak": med([s["tree_peak_mb"] for r in ok for s in r["steps"] if s["step"] == n]),
            }
            for n in step_names
        },
        "phases": {
            p: med([r["phases"][p] for r in ok if p in r.get("phases", {})])
            for p in (ok[0].get("phases", {}) if ok else {})
        },
    }


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def verdict(value: float | None) -> str:
    return "not measured" if value is None else ("**met**" if value <= TARGET else "**not met**")


def render(data: dict[str, Any]) -> str:
    m, a, s = data["machine"], data["args"], data["summary"]
    lf = s["lf"]
    lines = [
        f"## {TITLE} ({data['started'][:10]})",
        "",
        f"`bench/export_bench.py`, {m['cpu']}, {m['cores']} cores, load {m['load_before']} before and "
        f"{m.get('load_after')} after the run (1-min load at each run's start and end in the raw numbers; the "
        f"machine was shared); torch/OpenMP threads {a['threads'] or 'default'} on both sides (the quantizer uses "
        f"all cores on both sides). Demo model SmolLM2-135M-Instruct "
        "(float32 safetensors, 135 M parameters) + a LoRA adapter (r 8, alpha 16, all 7 linear layers of the 30 "
        "decoder layers, B drawn from N(0, 0.01²), seeded; made with peft, not trained). One YAML job in LF's "
        "merge_lora shape (`bench/out/jobs/export.yaml`, template chatml, export_size 5, export_device cpu). "
        f"{a['runs']} runs per side, rotating order, medians. LF's sequence: `llamafactory-cli export` (merge, "
        "save), then `convert_hf_to_gguf.py <merged> --outtype f16`, then `llama_model_quantize(F16 → Q4_K_M)` "
        "(llama-cpp-python; PyPI has no llama-quantize binary); the converter copy (.venv/share/tunery/llama.cpp) "
        "and the quantizer are Tunery's own, run with the project venv's python for both sides, so only the "
        "merge step is LF's. Time: wall time of the process(es), LF summed over its three. Peak memory: the "
        "largest summed RSS of the process tree (sampled every 50 ms; Tunery's converter/quantizer children "
        "run while the exporting process lives, and both are counted), LF the largest over its three "
        "processes; also `ru_maxrss` of the largest single process.",
        "",
        "| side | wall (s) | × LF | peak RSS, tree (MB) | × LF | largest process (MB) "
        "| steps: median wall s (tree peak MB) |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for side in SIDES:
        row = s[side]
        if not row["runs"]:
            continue
        parts = "; ".join(f"{n} {fmt(v['wall'])} ({fmt(v['tree_peak'], 0)})" for n, v in row["steps"].items())
        if row["phases"]:
            parts = "phases: " + "; ".join(f"{n} {fmt(v)}" for n, v in row["phases"].items())
        lines.append(
            f"| {LABELS[side]} | {fmt(row['wall'])} | {fmt(ratio(row['wall'], lf['wall']), 2)}× "
            f"| {fmt(row['tree_peak'], 0)} | {fmt(ratio(row['tree_peak'], lf['tree_peak']), 2)}× "
            f"| {fmt(row['maxrss'], 0)} | {parts} |"
        )
    t = s["tunery"]
    time_ratio, mem_ratio = ratio(t["wall"], lf["wall"]), ratio(t["tree_peak"], lf["tree_peak"])
    lines += [
        "",
        f"Targets (Tunery with export_verify false / LF): time ≤ {TARGET}× → {verdict(time_ratio)}; peak memory "
        f"≤ {TARGET}× → {verdict(mem_ratio)} (largest single process: "
        f"{fmt(ratio(t['maxrss'], lf['maxrss']), 2)}×). Tunery's phase times come from its events (a phase ends "
        "at its progress event; process start-up and imports before the first phase are the rest of the wall "
        "time).",
        "",
    ]
    c = data["compare"]
    if c:
        mg, f16, q4 = c["merged"], c["gguf_F16"], c["gguf_Q4_K_M"]
        lines.append(
            f"Same outputs: merged model {mg['tensors']} tensors ({mg['dtype']}), names "
            f"{'equal' if mg['names_equal'] else 'differ'}, dtypes/shapes "
            f"{'equal' if mg['dtypes_equal'] else 'differ'}, "
            f"{mg['identical_tensors']} bit-identical, largest difference {mg['max_abs_diff']:.3g}."
        )
        for label, g in (("GGUF F16", f16), ("GGUF Q4_K_M", q4)):
            if "missing" in g:
                lines.append(f"{label}: missing {g['missing']}.")
                continue
            lines.append(
                f"{label}: {g['tensors'][0]} / {g['tensors'][1]} tensors (Tunery / LF), names "
                f"{'equal' if g['names_equal'] else 'differ'}, types {'equal' if g['types_equal'] else 'differ'} "
                f"({', '.join(f'{k} {v}' for k, v in sorted(g['types'].items()))}), {g['identical_tensors']} "
                f"bit-identical; sizes {g['size_bytes'][0]:,} / {g['size_bytes'][1]:,} bytes; metadata differing: "
                f"{', '.join(g['metadata_differing'] + g['metadata_only_in_one']) or 'none'}."
            )
        lines.append("")
    lines += section_footer(data, "bench/out/export_results.json")
    return "\n".join(lines)


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs per side (default 3)")
    parser.add_argument("--verify-runs", type=int, default=2, help="runs of the export_verify true row (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for every side (0: torch's default)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds before a process is killed")
    parser.add_argument("--seed", type=int, default=0, help="seed of the adapter's weights")
    parser.add_argument("--keep", action="store_true", help="keep every run's exported files (~0.9 GB each)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md", help="report file")
    parser.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prepare:
        prepare(args.seed)
        return

    started = dt.datetime.now()
    runs_dir = OUT / "runs" / f"export-{started.strftime('%Y%m%d-%H%M%S')}"
    ensure_lf()
    if not (LLAMA_CPP / "convert_hf_to_gguf.py").exists():
        subprocess.run(["bash", str(ROOT / "deploy" / "setup_gguf.sh")], check=True, cwd=ROOT)
    paths = prepared(args.seed)
    job_path = OUT / "jobs" / "export.yaml"
    job_path.parent.mkdir(parents=True, exist_ok=True)
    job_path.write_text(yaml.safe_dump(export_job(paths["model"], paths["adapter"]), sort_keys=False), "utf-8")
    data: dict[str, Any] = {
        "started": started.isoformat(timespec="seconds"),
        "args": vars(args) | {"out": str(args.out)},
    }
    data["machine"] = machine_info()
    data["versions"] = versions()

    records: list[dict[str, Any]] = []
    for index in range(max(args.runs, args.verify_runs)):
        sides = [side for side in SIDES if index < (args.verify_runs if side == "tunery_verify" else args.runs)]
        order = sides[index % len(sides) :] + sides[: index % len(sides)]
        for side in order:
            records.append(run_one(side, job_path, f"export-{index}-{side}", runs_dir, args))
    data["summary"] = {side: summary(records, side) for side in SIDES}
    data["compare"] = compare(records)
    data["failures"] = [r for r in records if r["returncode"] != 0]
    data["records"] = records
    data["machine"]["load_after"] = machine_info()["load_before"]
    (OUT / "export_results.json").write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    replace_section(args.out, TITLE, render(data))
    if not args.keep:
        for record in records:
            shutil.rmtree(record["export_dir"], ignore_errors=True)
    print(f"wrote {rel(args.out)} and {rel(OUT / 'export_results.json')}", flush=True)


if __name__ == "__main__":
    main()

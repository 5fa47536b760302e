"""The "Platform service" section of bench/RESULTS.md, from bench/out/service.json's numbers."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from harness import replace_section

TITLE = "## Platform service"
API_TARGET_MS, STREAM_TARGET_MS, PLATFORM_TARGET_S = 50.0, 250.0, 2.0


def _verdict(value: float | None, target: float) -> str:
    if value is None:
        return "**not measured**"
    return "**met**" if value < target else "**not met**"


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 3) if present else None


def _p99_or_inf(row: dict[str, Any]) -> float:
    """A run's p99; infinite when requests were not served (the server did not keep up)."""
    if row["ok"] < row["planned"] or row["p99_ms"] is None:
        return float("inf")
    return float(row["p99_ms"])


def _api(rows: list[dict[str, Any]], args: dict[str, Any]) -> list[str]:
    repeats = args.get("repeats", 1)
    lines = [
        f"### API latency, open loop at {args['rates']} requests/s per endpoint ({args['seconds']:.0f} s each)",
        "",
        "Latency is counted from each request's scheduled time (a stalled server or generator cannot hide",
        "queueing); requests time out after 10 s. *send lag*: how late the generator itself sent (its own",
        "saturation; *generator CPU*: its own CPU time over the run); at most 256 requests are in flight: one",
        "due beyond that is not sent and counted as an",
        "error (the server is not keeping up). *workers*: `tunery server --workers` (uvicorn processes).",
        "Before each run the server's backlog is drained (*drained*: seconds that took). At the target rate",
        f"each endpoint runs {repeats} times (*run*); the verdict takes each endpoint's median run, so one",
        "stall of the shared machine does not decide it (every run is listed).",
        "",
        "| workers | rate/s | run | endpoint | ok / planned | errors | achieved/s | p50 ms | p90 ms | p99 ms | max ms "
        "| send lag p99 ms | generator CPU % | drained s | load after |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        errors = ", ".join(f"{k}: {v}" for k, v in r["errors"].items()) or "0"
        lines.append(
            f"| {r['workers']} | {r['rate']:.0f} | {r.get('run', 1)} | {r['name']} | {r['ok']} / {r['planned']} | "
            f"{errors} | {r['achieved_per_s']} | {r['p50_ms']} | {r['p90_ms']} | {r['p99_ms']} | {r['max_ms']} | "
            f"{r['send_lag_p99_ms']} | {r.get('generator_cpu_pct', '–')} | {r['drained_s']} | {r['load_after']} |"
        )
    target = max(r["rate"] for r in rows)
    lines.append("")
    for workers in sorted({r["workers"] for r in rows}):
        at_target = [r for r in rows if r["rate"] == target and r["workers"] == workers]
        medians = {}
        for name in dict.fromkeys(r["name"] for r in at_target):
            medians[name] = statistics.median(_p99_or_inf(r) for r in at_target if r["name"] == name)
        worst = max(medians.values())
        verdict = "**met**" if worst < API_TARGET_MS else "**not met**"
        shown = ", ".join(
            f"{name} {value:.1f} ms" if value != float("inf") else f"{name}: requests not served"
            for name, value in medians.items()
        )
        lines.append(
            f"Target p99 < {API_TARGET_MS:.0f} ms at {target:.0f} requests/s, {workers} server process(es): "
            f"{verdict} (median p99 of the runs: {shown})."
        )
    lines.append("")
    return lines


def _stream(s: dict[str, Any]) -> list[str]:
    return [
        f"### Live events: {s['clients']} websocket clients on one job stream",
        "",
        f"{s['events']} progress events at {s['event_rate']} per second, each relayed like the worker does (one",
        "transaction: lease fence, event row, metrics; then a Redis publish); latency = the event's own time",
        "(set just before the DB write) -> receipt by a client (all clients in one asyncio process).",
        "",
        "| clients connected | deliveries / expected | p50 ms | p90 ms | p99 ms | max ms | load before → after |",
        "|---|---|---|---|---|---|---|",
        f"| {s['connected']} / {s['clients']} | {s['deliveries']} / {s['expected']} | {s['p50_ms']} | {s['p90_ms']} | "
        f"{s['p99_ms']} | {s['max_ms']} | {s['load_before']} → {s['load_after']} |",
        "",
        f"Target p99 < {STREAM_TARGET_MS:.0f} ms: {_verdict(s['p99_ms'], STREAM_TARGET_MS)}.",
        "",
    ]


def _job(job: dict[str, Any]) -> list[str]:
    runs, phases = job["runs"], job["phases"]
    header = "| phase | what | " + " | ".join(f"run {i + 1}" for i in range(len(runs))) + " | median |"
    lines = [
        "### Submit → first training step (tiny Llama, LoRA, CPU, `tunery worker` with one CPU slot)",
        "",
        "Seconds per phase, from the client's clock, the job row (queued_at / started_at), the engine process's",
        "start time, the moment the weights file appears in the engine's memory maps, and the engine's events.",
        "",
        header,
        "|---|---|" + "---|" * (len(runs) + 1),
    ]
    for name, what, _start, _end in phases:
        values = [r["phases"][name] for r in runs]
        cells = " | ".join(str(v) for v in values)
        lines.append(f"| {name} | {what} | {cells} | {_median(values)} |")
    for key, label in (("total_s", "**POST → progress event stored**"), ("platform_s", "**platform overhead**"),
                       ("total_minus_model_load_s", "total minus model load")):  # fmt: skip
        values = [r[key] for r in runs]
        lines.append(f"| {label} | | {' | '.join(str(v) for v in values)} | {_median(values)} |")
    platform = _median([r["platform_s"] for r in runs])
    probe = _median(job["import_probe_s"])
    lines += [
        "",
        f"Platform overhead = {' + '.join(job['platform'])} (what the service adds to a standalone `tunery train`).",
        f"Target ≤ {PLATFORM_TARGET_S:.0f} s: {_verdict(platform, PLATFORM_TARGET_S + 1e-9)} (median {platform} s).",
        f"An import-only probe (fresh `python`, the engine's imports) takes a median {probe} s on the same machine,",
        "i.e. most of *import_data*; the rest is the tokenizer and dataset tokenization.",
        f"Status of the runs: {', '.join(r['status'] for r in runs)}.",
        "",
    ]
    return lines


def render(results: dict[str, Any]) -> str:
    info = results["info"]
    args = info["args"]
    lines = [
        "",
        f"{TITLE} (API, live events, job start; {info['started'][:10]})",
        "",
        "Generated by `bench/service_bench.py` (started "
        f"{info['started']}, finished {info.get('finished', '?')}). `tunery server` (uvicorn, access log on, as",
        "shipped) and `tunery worker` on PostgreSQL 127.0.0.1:5432 (a fresh database)",
        "and Redis (broker + pub/sub), all on loopback; the load generator, the websocket clients and the",
        "publisher run on the same machine and compete for its CPUs.",
        "",
        f"- CPU: {info['cpu']}, {info['cores']} cores (shared with other developers), memory {info['memory']}",
        f"- load average (1, 5, 15 min) before: {info['load_before']}, after: {info.get('load_after')}",
        "",
    ]
    if "api" in results:
        lines += _api(results["api"], args)
    if "stream" in results:
        lines += _stream(results["stream"])
    if "job" in results:
        lines += _job(results["job"])
    lines += ["Raw numbers: `bench/out/service.json`; server / worker logs: `bench/out/service-*.log`.", ""]
    return "\n".join(lines)


def write_section(path: Path, section: str) -> None:
    """Replace this benchmark's section of ``path`` (other sections are kept)."""
    replace_section(path, TITLE.removeprefix("## "), section)

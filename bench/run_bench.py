"""Tunery vs LLaMA-Factory 0.9.5 on CPU: preprocessing rows/s, SFT-LoRA tokens/s and peak memory.

Run from the repository root with the project venv: ``.venv/bin/python bench/run_bench.py`` (``make bench``).
Both sides get the same tiny model, data, template and hyper-parameters (one flat YAML job file, read by
``llamafactory-cli train`` and ``tunery train`` alike) and the same environment. Every measurement is a
fresh subprocess, the sides alternate (ABBA order), medians and ratios go to bench/RESULTS.md and the raw
numbers to bench/out/results.json. bench/README.md says what is measured and how.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    BENCH,
    OUT,
    SIDES,
    Measured,
    Results,
    bench_env,
    bench_results,
    ensure_lf,
    ensure_model,
    input_rows,
    log_tail,
    machine_info,
    other_sections,
    prep_command,
    rel,
    run_measured,
    train_command,
    train_record,
    tunery_missing,
    versions,
    write_jobs,
)
from report import render

#: sections of RESULTS.md written by the other benchmarks
OTHER_BENCHMARKS = ("Serving:", "Platform service", "Preference and RL")

Make = Callable[[Path, Path], list[str]]  # (output folder, scratch folder) -> command


def fixed(command: list[str]) -> Make:
    return lambda _output_dir, _scratch: command


def order(round_index: int, sides: list[str]) -> list[str]:
    """ABBA: LF, Tunery, Tunery, LF, LF, Tunery, ... so slow drifts of the machine hit both sides alike."""
    return sides if round_index % 2 == 0 else list(reversed(sides))


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        settings = {key: value for key, value in vars(args).items() if key != "out"}
        self.results = Results(started=dt.datetime.now().isoformat(timespec="seconds"), args=settings)
        self.runs_dir = OUT / "runs" / dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        self.counter = 0

    def measure(self, side: str, what: str, make: Make) -> tuple[Measured, Path]:
        """Run ``make(output_dir, scratch)`` as one measured process with fresh caches."""
        self.counter += 1
        name = f"{self.counter:02d}-{what}-{side}"
        scratch = Path(tempfile.mkdtemp(prefix=f"bench-{side}-"))
        output_dir = self.runs_dir / name
        env = bench_env(self.args.threads, scratch)
        try:
            measured = run_measured(make(output_dir, scratch), env, self.runs_dir / f"{name}.log", self.args.timeout)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        status = "timed out" if measured.timed_out else f"exit {measured.returncode}"
        print(f"[{name}] {status}, {measured.wall_seconds:.1f} s, {measured.peak_rss_mb:.0f} MB", flush=True)
        if measured.returncode != 0:
            failure = {"what": what, "side": side, "returncode": measured.returncode}
            self.results.failures.append({**failure, "log": rel(measured.log), "tail": log_tail(measured.log)})
        return measured, output_dir

    def run(self) -> Results:
        args, results = self.args, self.results
        results.machine = machine_info()
        ensure_lf()
        paths = write_jobs(ensure_model(OUT / "tiny-llama"), args.max_samples)
        results.jobs = {name: str(path) for name, path in paths.items()}
        results.rows_in = {"prep": input_rows(None), "train": input_rows(args.max_samples)}
        results.rows_in["train_packed"] = results.rows_in["train"]
        results.versions = versions()

        sides = list(args.sides)
        if "tunery" in sides:
            missing = tunery_missing()
            if missing and not args.force_tunery:
                results.skipped["tunery"] = missing
                sides.remove("tunery")
        print(f"measuring: {sides}; skipped: {results.skipped or 'none'}", flush=True)

        if not args.skip_prep:
            self.preprocessing(sides, paths)
        if not args.skip_train:
            self.training(sides, paths)
        results.machine["load_after"] = [round(x, 2) for x in os.getloadavg()]
        results.finished = dt.datetime.now().isoformat(timespec="seconds")
        return results

    def preprocessing(self, sides: list[str], paths: dict[str, Path]) -> None:
        for index in range(self.args.runs):
            for side in order(index, sides):
                command = prep_command(side, [paths["prep"]], self.args.prep_repeat)
                measured, _ = self.measure(side, "prep", fixed(command))
                for found in bench_results(measured.log):
                    extra = {"wall_seconds": measured.wall_seconds, "peak_rss_mb": measured.peak_rss_mb}
                    self.results.prep.append({**found, "side": side, **extra})

    def training(self, sides: list[str], paths: dict[str, Path]) -> None:
        results = self.results
        for side in sides:  # token counts of the training sets, from each side's own pipeline
            command = prep_command(side, [paths["train"], paths["train_packed"]], 1)
            measured, _ = self.measure(side, "count", fixed(command))
            for found, job in zip(bench_results(measured.log), ("train", "train_packed"), strict=False):
                results.tokens.setdefault(side, {})[job] = found["runs"][0]["tokens"]
        for job in ("train", "train_packed"):
            for index in range(self.args.runs):
                for side in order(index, sides):
                    make = functools.partial(train_command, side, paths[job])
                    measured, output_dir = self.measure(side, job, make)
                    tokens = results.tokens.get(side, {}).get(job)
                    results.train.append(train_record(side, job, measured, output_dir, tokens))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="processes per side and measurement (default 3)")
    parser.add_argument("--prep-repeat", type=int, default=3, help="timed preprocessing calls per process")
    parser.add_argument("--max-samples", type=int, default=40, help="rows per dataset for training (default 40)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for both sides (0: torch default)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds before a run is killed")
    parser.add_argument("--sides", default="lf,tunery", help="comma-separated subset of: lf, tunery")
    parser.add_argument("--skip-prep", action="store_true", help="no preprocessing measurement")
    parser.add_argument("--skip-train", action="store_true", help="no training measurement")
    parser.add_argument("--force-tunery", action="store_true", help="run Tunery even if entry points are missing")
    parser.add_argument("--render-only", action="store_true", help="rewrite --out from bench/out/results.json")
    parser.add_argument("--out", type=Path, default=BENCH / "RESULTS.md", help="report file")
    args = parser.parse_args()
    args.sides = [side.strip() for side in args.sides.split(",") if side.strip() in SIDES]

    raw = OUT / "results.json"
    if args.render_only:
        results = Results(**json.loads(raw.read_text(encoding="utf-8")))
    else:
        results = Bench(args).run()
        raw.write_text(json.dumps(asdict(results), indent=2), encoding="utf-8")
    kept = other_sections(args.out, OTHER_BENCHMARKS)  # serve_bench's and service_bench's sections stay
    args.out.write_text(render(results).rstrip("\n") + "\n\n" + kept, encoding="utf-8")
    print(f"wrote {rel(args.out)}" + ("" if args.render_only else f" and {rel(raw)}"), flush=True)


if __name__ == "__main__":
    main()

"""Serving throughput: 8 concurrent streaming chat clients on the same tiny model, Tunery (vllm and hf
engines, ``tunery api``) vs ``llamafactory-cli api`` 0.9.5 (hf engine, default concurrency).

Run from the repository root: ``.venv/bin/python bench/serve_bench.py`` (``make bench-serve``). Each side is
started as its own server process on 127.0.0.1, warmed up with one request, then 8 clients each send
``--requests`` streaming requests one after the other (greedy, ``max_tokens`` tokens). Measured per side:
completion tokens/s over the whole concurrent phase (tokens counted by re-tokenizing each streamed answer
with the model's tokenizer, the same way for every side) and time to first token (first content chunk) per
request. Results replace the "Serving" section of bench/RESULTS.md; raw numbers go to bench/out/serve.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import BENCH, LF_CLI, OUT, ROOT, bench_env, ensure_lf, ensure_model, machine_info, replace_section

TUNERY_PY = ROOT / ".venv" / "bin" / "python"
VLLM_PY = ROOT / ".venv-vllm" / "bin" / "python"
SIDES = ("tunery-vllm", "tunery-hf", "lf")
NAMES = {"tunery-vllm": "Tunery (vllm engine)", "tunery-hf": "Tunery (hf engine)", "lf": "LLaMA-Factory 0.9.5 (hf)"}
QUESTIONS = [
    "Tell me a story about a fox.",
    "What is the capital of France?",
    "Explain how a transformer model works.",
    "Write a poem about the sea.",
    "List three uses of Python.",
    "Who are you?",
    "Describe a sunny day.",
    "How do I bake bread?",
]


@dataclass
class SideResult:
    side: str
    clients: int
    requests: int
    completion_tokens: int = 0
    seconds: float = 0.0
    ttft: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    startup_seconds: float = 0.0

    @property
    def tokens_per_second(self) -> float:
        return self.completion_tokens / self.seconds if self.seconds else 0.0


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_job(model: Path, folder: Path, max_tokens: int) -> Path:
    job = folder / "serve.yaml"
    lines = [
        f"model_name_or_path: {model}",
        "template: llama3",
        "infer_backend: huggingface",
        "do_sample: false",
        f"max_new_tokens: {max_tokens}",
    ]
    job.write_text("\n".join(lines) + "\n")
    return job


def command(side: str, job: Path) -> list[str]:
    if side == "lf":
        return [str(LF_CLI), "api", str(job)]
    engine = side.split("-", 1)[1]
    return [str(TUNERY_PY), "-m", "tunery.serving.cli", "api", str(job), "--engine", engine, "--model-name", "tiny"]


async def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}")
            try:
                if (await client.get(f"{url}/v1/models", timeout=5)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.5)
    raise RuntimeError("server did not start in time")


async def one_request(client: httpx.AsyncClient, url: str, question: str, max_tokens: int) -> tuple[str, float]:
    body = {
        "model": "tiny",
        "messages": [{"role": "user", "content": question}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "do_sample": False,
        "stream": True,
    }
    start = time.perf_counter()
    first: float | None = None
    parts: list[str] = []
    async with client.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {(await response.aread())[:300]!r}")
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line.strip() == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            for choice in chunk.get("choices", []):
                text = (choice.get("delta") or {}).get("content") or ""
                if text:
                    first = first if first is not None else time.perf_counter() - start
                    parts.append(text)
    return "".join(parts), first if first is not None else time.perf_counter() - start


async def measure(url: str, clients: int, requests: int, max_tokens: int, tokenizer: Any, result: SideResult) -> None:
    timeout = httpx.Timeout(600.0)
    async with httpx.AsyncClient(timeout=timeout, limits=httpx.Limits(max_connections=clients + 4)) as client:
        await one_request(client, url, "Warm up.", 8)

        async def worker(number: int) -> None:
            for index in range(requests):
                question = QUESTIONS[(number + index) % len(QUESTIONS)]
                try:
                    text, ttft = await one_request(client, url, question, max_tokens)
                except Exception as exc:  # recorded, the run goes on
                    result.errors.append(str(exc)[:300])
                    continue
                result.ttft.append(ttft)
                result.completion_tokens += len(tokenizer(text, add_special_tokens=False)["input_ids"])

        start = time.perf_counter()
        await asyncio.gather(*[worker(number) for number in range(clients)])
        result.seconds = time.perf_counter() - start


def run_side(side: str, job: Path, args: argparse.Namespace, tokenizer: Any, scratch: Path) -> SideResult:
    port = free_port()
    env = bench_env(args.threads, scratch)
    env.update(API_PORT=str(port), API_HOST="127.0.0.1", API_MODEL_NAME="tiny")
    env["PYTHONPATH"] = str(ROOT / "backend")
    log = (OUT / f"serve-{side}.log").open("wb")
    started = time.perf_counter()
    process = subprocess.Popen(
        command(side, job), env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    result = SideResult(side, args.clients, args.requests)
    url = f"http://127.0.0.1:{port}"
    try:
        asyncio.run(wait_ready(url, process, args.startup_timeout))
        result.startup_seconds = time.perf_counter() - started
        asyncio.run(measure(url, args.clients, args.requests, args.max_tokens, tokenizer, result))
    except Exception as exc:
        result.errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)
        log.close()
    return result


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def render(results: list[SideResult], args: argparse.Namespace, info: dict[str, Any]) -> str:
    lf = next((r for r in results if r.side == "lf" and r.tokens_per_second), None)
    lines = [
        "",
        f"## Serving: {args.clients} concurrent streaming clients ({dt.date.today().isoformat()})",
        "",
        f"`bench/serve_bench.py`: {args.clients} clients × {args.requests} streaming chat requests each, greedy, "
        f"`max_tokens` {args.max_tokens}, tiny Llama (2 layers, hidden 64, vocab 2048, float32, template "
        "`llama3`), every server on 127.0.0.1 with its default concurrency; Tunery via `tunery api` "
        "(continuous batching in the hf engine; vLLM's server for the vllm engine), LLaMA-Factory via "
        "`llamafactory-cli api` (huggingface backend). Tokens: each streamed answer re-tokenized with the model's "
        f"tokenizer. Threads per process: {args.threads or 'torch default'}.",
        "",
        f"Command: `.venv/bin/python bench/serve_bench.py {' '.join(sys.argv[1:])}`".replace(" `", "`"),
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores, {info['memory']}; load average before: "
        f"{info['load_before']}, after: {[round(x, 2) for x in os.getloadavg()]}.",
        "",
        "| server | completion tokens/s | vs LF | TTFT median (s) | TTFT p90 (s) | tokens | wall (s) | errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        ratio = f"{result.tokens_per_second / lf.tokens_per_second:.2f}×" if lf and result.tokens_per_second else "-"
        median = statistics.median(result.ttft) if result.ttft else float("nan")
        lines.append(
            f"| {NAMES[result.side]} | {result.tokens_per_second:.1f} | {ratio} | {median:.3f} | "
            f"{percentile(result.ttft, 0.9):.3f} | {result.completion_tokens} | {result.seconds:.1f} | "
            f"{len(result.errors)} |"
        )
    lines += ["", "Target: Tunery ≥ 3× LLaMA-Factory's throughput.", ""]
    for result in results:
        if result.errors:
            lines.append(f"- {NAMES[result.side]} errors (first): `{result.errors[0]}`")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sides", default=",".join(SIDES), help="comma-separated: tunery-vllm,tunery-hf,lf")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=3, help="requests per client")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=0, help="OMP threads per server (0: torch default)")
    parser.add_argument("--startup-timeout", type=float, default=600)
    parser.add_argument("--no-write", action="store_true", help="print the section, do not write RESULTS.md")
    args = parser.parse_args()
    sides = [side for side in args.sides.split(",") if side]
    OUT.mkdir(parents=True, exist_ok=True)
    model = ensure_model(OUT / "tiny-llama")
    if "lf" in sides:
        ensure_lf()
    if "tunery-vllm" in sides and not VLLM_PY.exists():
        sys.stderr.write("no .venv-vllm: run `make vllm` or leave out tunery-vllm\n")
        return 2
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    info = machine_info()
    scratch = OUT / "serve-scratch"
    scratch.mkdir(exist_ok=True)
    job = write_job(model, scratch, args.max_tokens)
    results = []
    for side in sides:
        print(f"== {side}", flush=True)
        result = run_side(side, job, args, tokenizer, scratch)
        print(f"   {result.tokens_per_second:.1f} tokens/s, {len(result.errors)} errors", flush=True)
        results.append(result)
    section = render(results, args, info)
    (OUT / "serve.json").write_text(json.dumps([asdict(r) for r in results], indent=2))
    print(section)
    if not args.no_write:
        replace_section(BENCH / "RESULTS.md", "Serving:", section)
    return 0


if __name__ == "__main__":
    sys.exit(main())

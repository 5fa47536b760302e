"""The vLLM engine: vLLM's OpenAI server as a managed subprocess of its own virtual environment.

One process per base model, started with LoRA enabled and runtime adapter loading
(``VLLM_ALLOW_RUNTIME_LORA_UPDATING``); adapters are loaded and unloaded through its
``/v1/load_lora_adapter`` / ``/v1/unload_lora_adapter``. Prompts go in as token ids (rendered and
tokenized by Tunery with the training template) and tokens come back as ids (``return_token_ids``), so
decoding, stop strings and tool parsing are the same as with the transformers engine. Log-probs come in
vLLM's legacy completions shape with tokens as ids (``return_tokens_as_token_ids``). A prompt's log-probs
come from a request of their own (``echo`` with ``max_tokens`` 0) that vLLM runs alone (see gate.py), before
the request that generates.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any

import httpx

from tunery.serving.engines.base import EngineOptions
from tunery.serving.engines.gate import Gate
from tunery.serving.types import EngineError, FinishReason, GenerationRequest, TokenDelta, TokenLogprob

log = logging.getLogger(__name__)
SERVED_NAME = "base"
LOG_TAIL = 4000
#: most alternatives per token a request may ask for (OpenAI's chat limit, top_logprobs 20)
MAX_LOGPROBS = 20
TOKEN_ID = "token_id:"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def server_command(options: EngineOptions, port: int, dtype: str) -> list[str]:
    command = [
        options.vllm_python, "-m", "vllm.entrypoints.openai.api_server",
        "--model", options.model_path,
        "--served-model-name", SERVED_NAME,
        "--host", "127.0.0.1", "--port", str(port),
        "--dtype", dtype,
        "--max-num-seqs", str(options.max_batch),
        "--max-logprobs", str(MAX_LOGPROBS),
        "--disable-uvicorn-access-log",
    ]  # fmt: skip
    if options.max_adapters > 0:  # 0: the base model only (LoRA layers cost time even when no adapter is used)
        command += ["--enable-lora", "--max-loras", str(options.max_adapters)]
        command += ["--max-cpu-loras", str(options.max_adapters), "--max-lora-rank", str(options.max_lora_rank)]
    if options.max_model_len:
        command += ["--max-model-len", str(options.max_model_len)]
    return command + list(options.vllm_extra_args)


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the process that started it dies (Linux), so a killed API
    process leaves no vLLM server behind."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def cuda_visible() -> bool:
    return Path("/dev/nvidia0").exists() or bool(os.environ.get("CUDA_VISIBLE_DEVICES"))


def token_id(token: str) -> int:
    """The id in vLLM's ``token_id:<id>`` form of a token."""
    if not token.startswith(TOKEN_ID):
        raise EngineError(f"vLLM returned the token {token!r} where an id was expected")
    return int(token[len(TOKEN_ID) :])


def parse_logprobs(legacy: dict[str, Any] | None, top: int) -> list[TokenLogprob | None]:
    """vLLM's legacy completions log-probs (tokens as ids) as entries; its alternatives (the chosen token
    first, then the most likely ones) become the ``top`` most likely, most likely first."""
    if not legacy:
        return []
    out: list[TokenLogprob | None] = []
    rows = zip(legacy["tokens"], legacy["token_logprobs"], legacy["top_logprobs"], strict=True)
    for token, logprob, alternatives in rows:
        if logprob is None:
            out.append(None)
            continue
        ranked = sorted(((token_id(t), float(v)) for t, v in (alternatives or {}).items()), key=lambda a: -a[1])
        out.append(TokenLogprob(token_id(token), float(logprob), tuple(ranked[:top])))
    return out


class VLLMGeneration:
    def __init__(self, engine: VLLMEngine, request: GenerationRequest) -> None:
        self.engine = engine
        self.request = request
        self._response: httpx.Response | None = None
        self._finished: set[int] = set()
        self._entered = False  # holds the engine's gate (with other requests)

    def _body(self) -> dict[str, Any]:
        params = self.request.params
        body: dict[str, Any] = {
            "model": self.request.adapter or SERVED_NAME,
            "prompt": self.request.prompt_ids,
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "n": self.request.n,
            "presence_penalty": params.presence_penalty,
            "frequency_penalty": params.frequency_penalty,
            "top_k": params.top_k,
            "repetition_penalty": params.repetition_penalty,
            "stop_token_ids": list(params.stop_token_ids),
            "stop": list(params.stop),
            "include_stop_str_in_output": True,
            "skip_special_tokens": False,
            "return_token_ids": True,
            "stream": True,
        }
        if params.seed is not None:
            body["seed"] = params.seed
        if params.logprobs is not None:
            body |= {"logprobs": params.logprobs, "return_tokens_as_token_ids": True}
        return body

    async def _score_prompt(self) -> list[TokenLogprob | None]:
        """The prompt's log-probs (vLLM scores an echoed prompt with ``logprobs`` alternatives), alone."""
        body = {
            "model": self.request.adapter or SERVED_NAME,
            "prompt": self.request.prompt_ids,
            "max_tokens": 0,
            "echo": True,
            "logprobs": self.request.params.logprobs or 0,
            "return_tokens_as_token_ids": True,
        }
        async with self.engine.gate.alone():
            response = await self.engine.client().post("/v1/completions", json=body)
        if response.status_code != 200:
            raise EngineError(f"vLLM answered {response.status_code}: {response.text[:500]}")
        scored = parse_logprobs(response.json()["choices"][0]["logprobs"], self.request.params.logprobs or 0)
        return [None, *scored[1:]]

    async def __aiter__(self) -> AsyncIterator[TokenDelta]:
        params = self.request.params
        scored = await self._score_prompt() if params.prompt_logprobs else None
        if params.max_tokens == 0:  # scoring only
            for index in range(self.request.n):
                yield TokenDelta(index, [], "length", 0, [], scored if index == 0 else None)
            return
        client = self.engine.client()
        stop_ids = set(params.stop_token_ids) | self.engine.eos_ids
        await self.engine.gate.enter()
        self._entered = True
        try:
            async with client.stream("POST", "/v1/completions", json=self._body()) as response:
                self._response = response
                if response.status_code != 200:
                    detail = (await response.aread()).decode("utf-8", "replace")
                    raise EngineError(f"vLLM answered {response.status_code}: {detail[:500]}")
                async for line in response.aiter_lines():
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    chunk = json.loads(line[6:])
                    if "error" in chunk:
                        raise EngineError(f"vLLM: {chunk['error'].get('message', chunk['error'])}")
                    for choice in chunk.get("choices", []):
                        delta = self._delta(choice, stop_ids)
                        if delta is not None:
                            delta.prompt_logprobs, scored = scored, None
                            yield delta
        finally:
            await self._leave()

    def _delta(self, choice: dict[str, Any], stop_ids: set[int]) -> TokenDelta | None:
        params = self.request.params
        index = int(choice.get("index", 0))
        if index in self._finished:
            return None
        ids = list(choice.get("token_ids") or [])
        generated = len(ids)
        reason = choice.get("finish_reason")
        if reason == "stop" and ids and (ids[-1] in stop_ids or isinstance(choice.get("stop_reason"), int)):
            ids = ids[:-1]  # the stop token itself is not output
        logprobs = None
        if params.logprobs is not None:
            entries = parse_logprobs(choice.get("logprobs"), params.logprobs)
            logprobs = [entry for entry in entries if entry is not None][: len(ids)]
        finish: FinishReason | None = None
        if reason is not None:
            self._finished.add(index)
            finish = "length" if reason == "length" else "stop"
        return TokenDelta(index, ids, finish, generated, logprobs)

    async def _leave(self) -> None:
        if self._entered:
            self._entered = False
            await self.engine.gate.leave()

    def cancel(self, index: int) -> None:
        self._finished.add(index)

    async def aclose(self) -> None:
        if self._response is not None:
            await self._response.aclose()
        await self._leave()


class VLLMEngine:
    kind = "vllm"

    def __init__(self, options: EngineOptions) -> None:
        self.options = options
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.eos_ids: set[int] = set()
        self._context = options.max_model_len or 0
        self._client: httpx.AsyncClient | None = None
        self._log: IO[bytes] | None = None
        #: requests generate together; a prompt is scored alone
        self.gate = Gate()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def context_length(self) -> int:
        return self._context

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            timeout = httpx.Timeout(connect=10, read=None, write=60, pool=None)
            limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
            self._client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}", timeout=timeout, limits=limits)
        return self._client

    def log_tail(self) -> str:
        if self._log is None:
            return ""
        with open(self._log.name, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - LOG_TAIL))
            return handle.read().decode("utf-8", "replace")

    async def start(self) -> None:
        if self.running:
            return
        if not Path(self.options.vllm_python).is_file():
            raise EngineError(
                f"vLLM is not installed ({self.options.vllm_python} is missing): run `make vllm` or choose engine hf"
            )
        self.port = free_port()
        dtype = self.options.dtype if self.options.dtype != "auto" or cuda_visible() else "float32"
        env = dict(os.environ)
        env.update(VLLM_ALLOW_RUNTIME_LORA_UPDATING="True", VLLM_NO_USAGE_STATS="1", DO_NOT_TRACK="1")
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", str(self.options.vllm_cpu_kv_gib))
        env.pop("PYTHONPATH", None)  # the other environment must not see this one's packages
        self._log = tempfile.NamedTemporaryFile(prefix="tunery-vllm-", suffix=".log", delete=False)  # noqa: SIM115
        self.process = subprocess.Popen(
            server_command(self.options, self.port, dtype),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        log.info(
            "vLLM for %s: pid %d, port %d, log %s", self.options.model_path, self.process.pid, self.port, self._log.name
        )
        try:
            await self._wait_ready()
        except BaseException:
            await self.stop()
            raise
        self._read_model_facts()

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.options.startup_timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise EngineError(f"vLLM exited while starting; its log ends with:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                response = await self.client().get("/health", timeout=5)
                if response.status_code == 200:
                    models = (await self.client().get("/v1/models", timeout=10)).json()
                    self._context = int(models["data"][0].get("max_model_len") or self._context or 4096)
                    return
            await asyncio.sleep(0.5)
        raise EngineError(f"vLLM did not start within {self.options.startup_timeout:.0f}s:\n{self.log_tail()}")

    def _read_model_facts(self) -> None:
        ids: set[int] = set()
        for name in ("generation_config.json", "config.json"):
            with contextlib.suppress(OSError, ValueError):
                value = json.loads((Path(self.options.model_path) / name).read_text()).get("eos_token_id")
                ids.update(value if isinstance(value, list) else [value] if isinstance(value, int) else [])
        self.eos_ids = ids

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                await asyncio.to_thread(process.wait, 30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await asyncio.to_thread(process.wait, 30)
        if self._log is not None:
            self._log.close()
            Path(self._log.name).unlink(missing_ok=True)
            self._log = None

    async def load_adapter(self, name: str, path: str) -> None:
        response = await self.client().post("/v1/load_lora_adapter", json={"lora_name": name, "lora_path": path})
        if response.status_code != 200 and "already" not in response.text:
            raise EngineError(f"vLLM could not load adapter {path}: {response.text[:500]}")

    async def unload_adapter(self, name: str) -> None:
        response = await self.client().post("/v1/unload_lora_adapter", json={"lora_name": name})
        if response.status_code not in (200, 404) and "not" not in response.text:
            raise EngineError(f"vLLM could not unload adapter {name}: {response.text[:500]}")

    def generate(self, request: GenerationRequest) -> VLLMGeneration:
        if not self.running:
            raise EngineError("the vLLM engine is not running")
        return VLLMGeneration(self, request)

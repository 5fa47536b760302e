"""The transformers engine: the model in this process, one scheduler thread running continuous batching
(see hf_batch.py). Requests and adapter changes reach the thread through queues; tokens come back to the
asyncio side through ``loop.call_soon_threadsafe`` into one queue per request (the text iterator of a
stream is built on top of them by the protocol layer)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
import os
import queue
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from tunery.serving.engines.base import EngineOptions
from tunery.serving.types import EngineError, GenerationRequest, TokenDelta

log = logging.getLogger(__name__)
IDLE_WAIT = 0.5


@dataclass
class _Command:
    run: Callable[[], None]
    done: concurrent.futures.Future[None]


class HFGeneration:
    """Token deltas of one request (all its choices), fed by the scheduler thread."""

    def __init__(self, engine: HFEngine, request: GenerationRequest) -> None:
        self.engine = engine
        self.request = request
        self.queue: asyncio.Queue[TokenDelta | BaseException] = asyncio.Queue()
        self.loop = asyncio.get_running_loop()
        self.sequences: list[Any] = []
        self.open = request.n
        self.submitted = False

    def _emit(self, item: TokenDelta | BaseException) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, item)

    async def __aiter__(self) -> AsyncIterator[TokenDelta]:
        if not self.submitted:
            self.engine._submit(self)
            self.submitted = True
        while self.open > 0:
            item = await self.queue.get()
            if isinstance(item, BaseException):
                raise item
            if item.finish_reason is not None:
                self.open -= 1
            yield item

    def cancel(self, index: int) -> None:
        for seq in self.sequences:
            if seq.index == index:
                seq.cancelled = True

    async def aclose(self) -> None:
        for seq in self.sequences:
            seq.cancelled = True


class HFEngine:
    kind = "hf"

    def __init__(self, options: EngineOptions) -> None:
        self.options = options
        self.model: Any = None
        self._context = options.max_model_len or 0
        self._stop_ids: set[int] = set()
        self._adapters: set[str] = set()
        self._pending: queue.Queue[HFGeneration] = queue.Queue()
        self._commands: queue.Queue[_Command] = queue.Queue()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def context_length(self) -> int:
        return self._context

    # ----- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        if self.running:
            return
        await asyncio.to_thread(self._load)
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._loop, name=f"hf-engine-{os.path.basename(self.options.model_path)}", daemon=True
        )
        self._thread.start()

    def _load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, GenerationConfig

        device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype: Any = getattr(torch, self.options.dtype) if self.options.dtype != "auto" else None
        if dtype is None:
            dtype = torch.float32 if device == "cpu" else "auto"
        try:
            model = AutoModelForCausalLM.from_pretrained(self.options.model_path, dtype=dtype)
        except (OSError, ValueError) as exc:
            raise EngineError(f"cannot load model {self.options.model_path}: {exc}") from exc
        model = model.to(device)  # type: ignore[arg-type]
        model.eval()
        self.model = model
        config = model.config
        self._context = self.options.max_model_len or int(getattr(config, "max_position_embeddings", 0) or 4096)
        eos: Any = getattr(config, "eos_token_id", None)
        try:
            generation = GenerationConfig.from_pretrained(self.options.model_path)
            eos = generation.eos_token_id if generation.eos_token_id is not None else eos
        except OSError:
            pass
        self._stop_ids = set(eos if isinstance(eos, list) else [eos] if isinstance(eos, int) else [])
        self._uses_cache_kwarg = "cache" in inspect.signature(model.forward).parameters

    async def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 60)
        self._thread = None
        self.model = None

    # ----- adapters (run on the scheduler thread, between steps) ----------------------------------
    async def _on_thread(self, run: Callable[[], None]) -> None:
        if not self.running:
            raise EngineError("the engine is not running")
        command = _Command(run, concurrent.futures.Future())
        self._commands.put(command)
        self._wake.set()
        await asyncio.wrap_future(command.done)

    async def load_adapter(self, name: str, path: str) -> None:
        def run() -> None:
            from peft import PeftModel

            if name in self._adapters:
                return
            try:
                if hasattr(self.model, "peft_config"):
                    self.model.load_adapter(path, adapter_name=name)
                else:
                    self.model = PeftModel.from_pretrained(self.model, path, adapter_name=name)
            except (OSError, ValueError, KeyError) as exc:
                raise EngineError(f"cannot load adapter {path}: {exc}") from exc
            self.model.eval()
            self._adapters.add(name)

        await self._on_thread(run)

    async def unload_adapter(self, name: str) -> None:
        def run() -> None:
            if name not in self._adapters:
                return
            self._adapters.discard(name)
            if self._adapters:
                self.model.delete_adapter(name)
            else:  # the last one: back to the plain model
                self.model = self.model.unload()

        await self._on_thread(run)

    # ----- generation ---------------------------------------------------------------------------
    def generate(self, request: GenerationRequest) -> HFGeneration:
        if request.adapter is not None and request.adapter not in self._adapters:
            raise EngineError(f"adapter {request.adapter!r} is not loaded")
        return HFGeneration(self, request)

    def _submit(self, generation: HFGeneration) -> None:
        import torch

        from tunery.serving.engines.hf_batch import Sequence

        request = generation.request
        for index in range(request.n):
            generator = None
            if not request.params.greedy:
                generator = torch.Generator()
                seed = request.params.seed
                generator.manual_seed(seed + index if seed is not None else int.from_bytes(os.urandom(7), "big"))
            generation.sequences.append(
                Sequence(
                    index=index,
                    prompt_ids=list(request.prompt_ids),
                    params=request.params,
                    adapter=request.adapter,
                    emit=generation._emit,
                    max_new_tokens=request.params.max_tokens,
                    generator=generator,
                    score_prompt=request.params.prompt_logprobs and index == 0,
                )
            )
        self._pending.put(generation)
        self._wake.set()

    def _loop(self) -> None:
        from tunery.serving.engines.hf_batch import Batch

        batch = Batch(self.model, self._uses_cache_kwarg)
        while not self._stopping.is_set():
            self._run_commands(batch)
            batch.model = self.model
            waiting = self._take_pending(self.options.max_batch - len(batch), not len(batch))
            try:
                if waiting:
                    self._deliver(batch, batch.admit(waiting))
                if len(batch):
                    self._deliver(batch, batch.step())
            except Exception as exc:  # a failed forward fails the requests in it, not the engine
                log.exception("generation step failed")
                for seq in [*batch.sequences, *waiting]:
                    if not seq.finished:
                        seq.finished = True
                        seq.emit(EngineError(f"generation failed: {exc}"))
                batch.remove(list(batch.sequences))
            if not len(batch) and self._pending.empty() and self._commands.empty():
                self._wake.wait(IDLE_WAIT)
                self._wake.clear()
        for seq in batch.sequences:
            seq.emit(EngineError("the engine was stopped"))

    def _run_commands(self, batch: Any) -> None:
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                command.run()
                command.done.set_result(None)
            except BaseException as exc:
                command.done.set_exception(exc)

    def _take_pending(self, room: int, batch_empty: bool) -> list[Any]:
        """Sequences of waiting requests that fit in ``room`` (a request's choices are admitted together;
        one larger than the whole batch runs alone)."""
        taken: list[Any] = []
        while not self._pending.empty():
            generation = self._pending.queue[0]
            live = [seq for seq in generation.sequences if not seq.cancelled]
            fits = len(taken) + len(live) <= room or (batch_empty and not taken)
            if not fits:
                break
            self._pending.get_nowait()
            for seq in generation.sequences:
                if seq.cancelled:
                    seq.finished = True
                    seq.emit(TokenDelta(seq.index, [], "stop", 0))
            taken.extend(live)
        return taken

    def _deliver(self, batch: Any, produced: list[tuple[Any, int, Any]]) -> None:
        from tunery.serving.engines.hf_batch import finish_reason

        done = []
        for seq, token, logprob in produced:
            scored, seq.prompt_logprobs = seq.prompt_logprobs, None
            if seq.cancelled:
                if not seq.finished:
                    seq.emit(TokenDelta(seq.index, [], "stop", 0))
                seq.finished = True
                done.append(seq)
                continue
            if seq.max_new_tokens == 0:  # scoring the prompt only (echo with max_tokens 0)
                seq.emit(TokenDelta(seq.index, [], "length", 0, [], scored))
                seq.finished = True
                done.append(seq)
                continue
            seq.generated.append(token)
            reason = finish_reason(seq, token, self._stop_ids, self._context)
            ids = [] if reason == "stop" else [token]
            logprobs = None if logprob is None else [logprob] if ids else []
            seq.emit(TokenDelta(seq.index, ids, reason, 1, logprobs, scored))
            if reason is not None:
                seq.finished = True
                done.append(seq)
        batch.remove(done)

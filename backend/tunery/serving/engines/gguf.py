"""The gguf engine: a GGUF file (an export, llama.cpp's format) run by llama.cpp through llama-cpp-python in
this process, in one thread of its own.

Prompts come in as token ids that Tunery rendered with the training template and tokenized with the HF
tokenizer of the export folder, and go to llama.cpp as ids (never as text), so they are the ids the other
engines get. The decode loop and sampling are ours (gguf_decode.py), so sampling parameters and log-probs
mean what they mean on the hf engine.

One llama.cpp context serves one request at a time: requests queue in arrival order and the thread runs
each to its end, its choices one after the other (no batching; a long answer delays those behind it).
A GGUF export has its adapters merged in, so LoRA adapters are refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import threading
from collections.abc import AsyncIterator
from typing import Any

from tunery.serving.engines.base import EngineOptions
from tunery.serving.types import EngineError, FinishReason, GenerationRequest, TokenDelta, TokenLogprob

log = logging.getLogger(__name__)
#: the most context a model gets unless the server sets max_model_len: llama.cpp allocates the KV cache of
#: the whole context up front, so a model trained on 128k tokens does not get all of them by default
DEFAULT_MAX_CONTEXT = 32768
INSTALL_HINT = "install llama-cpp-python into the server's environment (deploy/setup_gguf.sh)"


class GGUFGeneration:
    """Token deltas of one request (all its choices), fed by the engine's thread."""

    def __init__(self, engine: GGUFEngine, request: GenerationRequest) -> None:
        self.engine = engine
        self.request = request
        self.queue: asyncio.Queue[TokenDelta | BaseException] = asyncio.Queue()
        self.loop = asyncio.get_running_loop()
        self.cancelled: set[int] = set()
        self.closed = False
        self.open = request.n
        self.submitted = False

    def emit(self, item: TokenDelta | BaseException) -> None:
        with contextlib.suppress(RuntimeError):  # the event loop is gone: nobody waits for this any more
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
        self.cancelled.add(index)

    async def aclose(self) -> None:
        self.closed = True


class GGUFEngine:
    kind = "gguf"

    def __init__(self, options: EngineOptions) -> None:
        self.options = options
        self.llama: Any = None
        self.decoder: Any = None
        self._context = options.max_model_len or 0
        self._stop_ids: set[int] = set()
        self._pending: queue.Queue[GGUFGeneration | None] = queue.Queue()
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
        self._pending = queue.Queue()
        self._thread = threading.Thread(
            target=self._loop, name=f"gguf-engine-{os.path.basename(self.options.model_path)}", daemon=True
        )
        self._thread.start()

    def _load(self) -> None:
        try:
            import llama_cpp
        except ImportError as exc:
            raise EngineError(f"the gguf engine needs llama-cpp-python: {INSTALL_HINT} ({exc})") from exc
        from tunery.serving.engines.gguf_decode import Decoder

        path = self.options.model_path
        if not os.path.isfile(path):
            raise EngineError(f"GGUF file not found: {path}")
        trained = trained_context(path)
        context = self.options.max_model_len or min(trained, DEFAULT_MAX_CONTEXT) or DEFAULT_MAX_CONTEXT
        try:
            llama = llama_cpp.Llama(
                model_path=path,
                n_ctx=context,
                n_threads=self.options.threads,
                n_gpu_layers=-1 if llama_cpp.llama_supports_gpu_offload() else 0,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise EngineError(f"llama.cpp cannot load {path}: {exc}") from exc
        self.llama, self.decoder = llama, Decoder(llama)
        self._context = int(llama.n_ctx())
        vocab = llama_cpp.llama_model_get_vocab(llama.model)
        ends = (llama_cpp.llama_vocab_eos(vocab), llama_cpp.llama_vocab_eot(vocab))
        self._stop_ids = {int(token) for token in ends if token >= 0}
        log.info("gguf engine: %s, context %d (trained on %d)", path, self._context, trained)

    async def stop(self) -> None:
        self._stopping.set()
        self._pending.put(None)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 60)
        self._thread = None
        if self.decoder is not None:
            self.decoder.close()
        if self.llama is not None:
            self.llama.close()
        self.llama = self.decoder = None

    # ----- adapters -------------------------------------------------------------------------------
    async def load_adapter(self, name: str, path: str) -> None:
        raise EngineError(
            f"the gguf engine serves a GGUF file as it is and takes no LoRA adapter ({path}): a GGUF export has its "
            "adapters merged in; export the adapter to GGUF, or serve it on its base model with the hf or vllm engine"
        )

    async def unload_adapter(self, name: str) -> None:
        return None  # none is ever loaded

    # ----- generation -----------------------------------------------------------------------------
    def generate(self, request: GenerationRequest) -> GGUFGeneration:
        if request.adapter is not None:
            raise EngineError(f"adapter {request.adapter!r} is not loaded: the gguf engine takes no adapters")
        if not request.prompt_ids:
            raise EngineError("the prompt has no tokens")
        if not self.running:
            raise EngineError("the engine is not running")
        return GGUFGeneration(self, request)

    def _submit(self, generation: GGUFGeneration) -> None:
        self._pending.put(generation)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            generation = self._pending.get()
            if generation is None:
                break
            for index in range(generation.request.n):
                try:
                    self._run_choice(generation, index)
                except Exception as exc:  # a failed request fails alone, not the engine
                    log.exception("gguf generation failed")
                    generation.emit(exc if isinstance(exc, EngineError) else EngineError(f"generation failed: {exc}"))
                    break
        while True:  # requests still waiting when the engine stops
            try:
                left = self._pending.get_nowait()
            except queue.Empty:
                return
            if left is not None:
                left.emit(EngineError("the engine was stopped"))

    def _run_choice(self, generation: GGUFGeneration, index: int) -> None:
        import numpy as np

        from tunery.serving.engines.gguf_decode import choose, logprob_entry

        request, params = generation.request, generation.request.params
        if generation.closed or index in generation.cancelled:
            generation.emit(TokenDelta(index, [], "stop", 0))
            return
        prompt = list(request.prompt_ids)
        score = params.prompt_logprobs and index == 0
        logits, scored = self.decoder.prefill(prompt, score, params.logprobs or 0)
        if params.max_tokens == 0:  # scoring the prompt only (echo with max_tokens 0)
            generation.emit(TokenDelta(index, [], "length", 0, [], scored))
            return
        seed = params.seed
        rng = np.random.default_rng(seed + index if seed is not None else None)
        stop_ids = self._stop_ids | set(params.stop_token_ids)
        generated: list[int] = []
        while True:
            if self._stopping.is_set():
                raise EngineError("the engine was stopped")
            if generation.closed or index in generation.cancelled:
                generation.emit(TokenDelta(index, [], "stop", 0))
                return
            token = choose(logits, params, prompt, generated, rng)
            entry: TokenLogprob | None = None
            if params.logprobs is not None:
                entry = logprob_entry(logits, token, params.logprobs)
            generated.append(token)
            reason: FinishReason | None = None
            if token in stop_ids:
                reason = "stop"
            elif len(generated) >= params.max_tokens or len(prompt) + len(generated) >= self._context:
                reason = "length"
            ids = [] if reason == "stop" else [token]
            logprobs = None if entry is None else [entry] if ids else []
            generation.emit(TokenDelta(index, ids, reason, 1, logprobs, scored))
            scored = None
            if reason is not None:
                return
            logits = self.decoder.step(token)


def trained_context(path: str) -> int:
    """The context length the model was trained with (the GGUF's ``<architecture>.context_length``; 0 when
    absent), read with the vocabulary only, without loading the weights."""
    import ctypes

    import llama_cpp

    if logging.getLogger("llama-cpp-python").level == logging.NOTSET:  # llama.cpp's loading chatter
        logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    model = llama_cpp.llama_model_load_from_file(path.encode(), params)
    if not model:
        raise EngineError(f"llama.cpp cannot read {path} (not a GGUF file, or an architecture it does not know)")
    try:
        buffer = ctypes.create_string_buffer(256)

        def value(key: str) -> str:
            size = llama_cpp.llama_model_meta_val_str(model, key.encode(), buffer, len(buffer))
            return buffer.value.decode() if size >= 0 else ""

        found = value(f"{value('general.architecture')}.context_length")
        return int(found) if found.isdigit() else 0
    finally:
        llama_cpp.llama_model_free(model)

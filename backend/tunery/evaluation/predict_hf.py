"""Prediction with the transformers engine's continuous batching (``tunery.serving.engines.hf_batch``), driven
in the calling thread.

The serving engine runs the same batch in a scheduler thread and hands every token to asyncio; for a batch
job that costs a thread switch per token, and on a busy CPU each switch waits for a time slice (measured:
3x slower generation next to one other busy process). Here one loop admits rows as slots free up
(``per_device_eval_batch_size`` at once), steps the batch and ends rows at a stop token, at
``max_new_tokens`` or at the context length, as the engine does. A LoRA adapter is merged into the model
before generating, as LLaMA-Factory merges the adapters of a model it loads for inference.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from tunery.serving.types import GenerationRequest

if TYPE_CHECKING:
    from tunery.spec import JobSpec

#: seconds between two progress reports (and cancel checks)
POLL_SECONDS = 0.5


def load_model(spec: JobSpec, adapter: str | None) -> tuple[Any, int]:
    """(the model on its device, ready for inference; its context length)."""
    import torch
    from transformers import AutoModelForCausalLM

    from tunery.engine.train.errors import invalid_spec

    use_gpu = torch.cuda.is_available() and not spec.training.use_cpu
    device = "cuda" if use_gpu else "cpu"
    wanted = spec.model.infer_dtype
    dtype: Any = getattr(torch, wanted) if wanted != "auto" else (torch.float32 if device == "cpu" else "auto")
    path = spec.model.model_name_or_path
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    except (OSError, ValueError) as exc:
        raise invalid_spec("model_name_or_path", f"cannot load the model {path!r}: {exc}") from exc
    if adapter is not None:
        from peft import PeftModel

        try:
            model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
        except (OSError, ValueError, KeyError) as exc:
            raise invalid_spec("adapter_name_or_path", f"cannot load adapter {adapter!r}: {exc}") from exc
    model = model.to(device)  # type: ignore[arg-type]
    model.eval()
    context = int(getattr(model.config, "max_position_embeddings", 0) or 4096)
    return model, context


def generate_hf(
    model: Any,
    requests: Sequence[GenerationRequest],
    batch_size: int,
    context: int,
    report: Callable[[int], None],
    on_answer: Callable[[int, list[int]], None],
) -> None:
    """Every request's answer (``on_answer(index, token ids)``, the stop token not included) by continuous
    batching; ``report(done)`` every :data:`POLL_SECONDS` (whatever it raises stops the run)."""
    import inspect
    import os

    import torch

    from tunery.serving.engines.hf_batch import Batch, finish_reason
    from tunery.serving.engines.hf_batch import Sequence as Row

    batch = Batch(model, "cache" in inspect.signature(model.forward).parameters)
    waiting = deque(range(len(requests)))
    index_of: dict[int, int] = {}
    done = 0
    last_report = time.monotonic()

    def start(index: int) -> Any:
        request = requests[index]
        generator = None
        if not request.params.greedy:
            generator = torch.Generator()
            seed = request.params.seed
            generator.manual_seed(seed if seed is not None else int.from_bytes(os.urandom(7), "big"))
        row = Row(
            index=0,
            prompt_ids=list(request.prompt_ids),
            params=request.params,
            adapter=None,
            emit=lambda item: None,
            max_new_tokens=request.params.max_tokens,
            generator=generator,
        )
        index_of[id(row)] = index
        return row

    while waiting or len(batch):
        room = batch_size - len(batch)
        if room > 0 and waiting:
            produced = batch.admit([start(waiting.popleft()) for _ in range(min(room, len(waiting)))])
        else:
            produced = batch.step()
        ended = []
        for item in produced:
            row, token = item[0], int(item[1])
            row.generated.append(token)
            reason = finish_reason(row, token, set(), context)
            if reason is None:
                continue
            ended.append(row)
            ids = row.generated[:-1] if reason == "stop" else list(row.generated)
            on_answer(index_of.pop(id(row)), ids)
        if ended:
            batch.remove(ended)
            done += len(ended)
        now = time.monotonic()
        if now - last_report >= POLL_SECONDS:
            last_report = now
            report(done)

"""An asyncio gate for an engine: many requests at once, or one alone (those waiting to be alone go first).

The vLLM engine scores prompts (``prompt_logprobs``) alone: with LoRA enabled, vLLM computes a prompt's
log-probs with the LoRA mapping of the whole batch, which fails (or mixes adapters) as soon as the batch
holds another request (vLLM issues #16668, #29955, #51594).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class Gate:
    def __init__(self) -> None:
        self._changed = asyncio.Condition()
        self._shared = 0
        self._alone = False
        self._waiting_alone = 0

    @property
    def shared(self) -> int:
        """Requests holding the gate together now."""
        return self._shared

    async def enter(self) -> None:
        """Hold the gate with others (wait while someone holds it alone or waits to)."""
        async with self._changed:
            await self._changed.wait_for(lambda: not self._alone and not self._waiting_alone)
            self._shared += 1

    async def leave(self) -> None:
        async with self._changed:
            self._shared -= 1
            self._changed.notify_all()

    @contextlib.asynccontextmanager
    async def alone(self) -> AsyncIterator[None]:
        """Hold the gate alone: once the requests holding it left, new ones wait until this one is done."""
        async with self._changed:
            self._waiting_alone += 1
            try:
                await self._changed.wait_for(lambda: not self._alone and not self._shared)
                self._alone = True
            finally:
                self._waiting_alone -= 1
                self._changed.notify_all()  # requests held back by this wait may go on if it was cancelled
        try:
            yield
        finally:
            async with self._changed:
                self._alone = False
                self._changed.notify_all()

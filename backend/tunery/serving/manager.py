"""Engines of this process: one per base model, started on first use, adapters loaded on demand (least
recently used unloaded past ``max_adapters``), stopped when idle unless a deployment keeps them warm."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from tunery.engine.templates import ChatTemplate, get_template
from tunery.serving.config import ServingConfig
from tunery.serving.engines import InferenceEngine, create_engine, default_engine
from tunery.serving.engines.registry import canonical
from tunery.serving.scoring import RewardScorers
from tunery.serving.types import EngineError, ServeTarget

log = logging.getLogger(__name__)


@dataclass
class Slot:
    """One engine and what it serves."""

    base_path: str
    kind: str
    engine: InferenceEngine
    #: the tokenizer's folder (the base model's, or a GGUF file's export folder)
    tokenizer_path: str = ""
    tokenizer: Any = None
    state: str = "starting"  # starting | ready | failed | stopping
    error: str | None = None
    adapters: OrderedDict[str, str] = field(default_factory=OrderedDict)  # name -> path, oldest use first
    active: int = 0
    last_used: float = field(default_factory=time.monotonic)
    started_at: float = field(default_factory=time.time)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass
class Deployment:
    id: str
    target: ServeTarget
    kind: str
    created_at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class Lease:
    """What one request uses: the engine, its adapter name, tokenizer and chat template."""

    engine: InferenceEngine
    adapter: str | None
    tokenizer: Any
    template: ChatTemplate


class EngineManager:
    def __init__(self, config: ServingConfig | None = None) -> None:
        self.config = config or ServingConfig.from_env()
        self.slots: dict[str, Slot] = {}
        self.deployments: dict[str, Deployment] = {}
        self._lock = asyncio.Lock()
        self._reaper: asyncio.Task[None] | None = None
        self._templates: dict[tuple[str, str | None, str | None], ChatTemplate] = {}
        #: reward models for /v1/score, loaded on first use and unloaded when idle like the engines
        self.scorers = RewardScorers(self.config)

    # ----- engines --------------------------------------------------------------------------------
    def choose_kind(self, requested: str | None) -> str:
        if requested:
            return canonical(requested)
        if self.config.engine:
            return canonical(self.config.engine)
        return default_engine(self.config.engine_options(""))

    @staticmethod
    def target_kind(target: ServeTarget, requested: str | None) -> str | None:
        """The engine ``target`` needs: its own (a GGUF file only runs on gguf), else the requested one (None:
        whichever serves its base already, else the default)."""
        if target.engine is None:
            return requested
        own = canonical(target.engine)
        if requested and canonical(requested) != own:
            raise EngineError(f"{target.model_id} is served by the {own} engine only; it cannot run on {requested}")
        return own

    async def _slot(self, target: ServeTarget, requested: str | None) -> Slot:
        self._ensure_reaper()
        base_path, kind = target.base_path, self.target_kind(target, requested)
        async with self._lock:
            slot = self.slots.get(base_path)
            if slot is not None and kind and slot.kind != canonical(kind) and slot.state != "failed":
                raise EngineError(
                    f"{base_path} is already served by the {slot.kind} engine; undeploy it before choosing {kind}"
                )
            if slot is None or slot.state == "failed":
                chosen = self.choose_kind(kind)
                engine = create_engine(chosen, self.config.engine_options(base_path))
                slot = Slot(base_path, chosen, engine, tokenizer_path=target.tokenizer_source)
                self.slots[base_path] = slot
                asyncio.get_running_loop().create_task(self._start(slot))
        await slot.ready.wait()
        if slot.state != "ready":
            raise EngineError(slot.error or f"the engine for {base_path} is not available")
        return slot

    async def _start(self, slot: Slot) -> None:
        try:
            slot.tokenizer = await asyncio.to_thread(load_tokenizer, slot.tokenizer_path or slot.base_path)
            await slot.engine.start()
            slot.state = "ready"
            log.info("%s engine ready for %s", slot.kind, slot.base_path)
        except Exception as exc:
            log.exception("could not start the %s engine for %s", slot.kind, slot.base_path)
            slot.state, slot.error = "failed", f"could not start the {slot.kind} engine: {exc}"
            with contextlib.suppress(Exception):
                await slot.engine.stop()
        finally:
            slot.ready.set()

    async def _adapter(self, slot: Slot, target: ServeTarget) -> str | None:
        name, path = target.adapter_name, target.adapter_path
        if name is None or path is None:
            return None
        async with slot.lock:
            if name in slot.adapters:
                slot.adapters.move_to_end(name)
                return name
            pinned = {d.target.adapter_name for d in self.deployments.values()}
            while len(slot.adapters) >= self.config.max_adapters:
                victim = next((n for n in slot.adapters if n not in pinned), None)
                if victim is None:
                    raise EngineError(f"{self.config.max_adapters} deployed adapters fill this engine; undeploy one")
                await slot.engine.unload_adapter(victim)
                del slot.adapters[victim]
            await slot.engine.load_adapter(name, path)
            slot.adapters[name] = path
            return name

    def template_for(self, target: ServeTarget, tokenizer: Any) -> ChatTemplate:
        key = (target.base_path, target.template, target.tool_format)
        if key not in self._templates:
            self._templates[key] = get_template(target.template, tokenizer, tool_format=target.tool_format)
        return self._templates[key]

    @contextlib.asynccontextmanager
    async def lease(self, target: ServeTarget, kind: str | None = None) -> AsyncIterator[Lease]:
        """The engine for ``target`` (started, adapter loaded) for the duration of one request."""
        slot = await self._slot(target, kind)
        slot.active += 1
        try:
            adapter = await self._adapter(slot, target)
            template = self.template_for(target, slot.tokenizer)
            slot.last_used = time.monotonic()
            yield Lease(slot.engine, adapter, slot.tokenizer, template)
        finally:
            slot.active -= 1
            slot.last_used = time.monotonic()

    # ----- deployments ----------------------------------------------------------------------------
    async def deploy(self, target: ServeTarget, kind: str | None = None) -> Deployment:
        """Start (or reuse) the engine for ``target`` and keep it running until undeployed."""
        if target.reward:
            raise EngineError(
                f"{target.model_id} is a reward model: /v1/score loads it on first use (it has no generation engine)"
            )
        for existing in self.deployments.values():
            if existing.target == target:
                return existing
        async with self.lease(target, kind):
            pass
        slot = self.slots[target.base_path]
        deployment = Deployment(f"dep_{secrets.token_hex(8)}", target, slot.kind)
        self.deployments[deployment.id] = deployment
        return deployment

    async def undeploy(self, deployment_id: str) -> Deployment | None:
        """Stop keeping the model warm: its adapter is unloaded, its engine stopped when nothing else needs it."""
        deployment = self.deployments.pop(deployment_id, None)
        if deployment is None:
            return None
        slot = self.slots.get(deployment.target.base_path)
        if slot is None:
            return deployment
        name = deployment.target.adapter_name
        if name is not None and name in slot.adapters and slot.state == "ready":
            async with slot.lock:
                await slot.engine.unload_adapter(name)
                slot.adapters.pop(name, None)
        if not self._pinned(slot) and slot.active == 0:
            await self._stop_slot(slot)
        return deployment

    def _pinned(self, slot: Slot) -> bool:
        return any(d.target.base_path == slot.base_path for d in self.deployments.values())

    # ----- idle engines ---------------------------------------------------------------------------
    def _ensure_reaper(self) -> None:
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.get_running_loop().create_task(self._reap_forever())

    async def _reap_forever(self) -> None:
        every = max(0.2, min(30.0, self.config.idle_seconds / 4))
        while True:
            await asyncio.sleep(every)
            await self.reap_idle()

    async def reap_idle(self) -> list[str]:
        """Stop engines without deployments that served nothing for ``idle_seconds``; returns their models."""
        now = time.monotonic()
        idle = [
            slot
            for slot in list(self.slots.values())
            if slot.state in ("ready", "failed")
            and slot.active == 0
            and not self._pinned(slot)
            and now - slot.last_used >= self.config.idle_seconds
        ]
        for slot in idle:
            log.info("stopping the idle %s engine of %s", slot.kind, slot.base_path)
            await self._stop_slot(slot)
        unloaded = await self.scorers.reap_idle()
        for path in unloaded:
            log.info("unloaded the idle reward model %s", path)
        return [slot.base_path for slot in idle] + unloaded

    async def _stop_slot(self, slot: Slot) -> None:
        slot.state = "stopping"
        if self.slots.get(slot.base_path) is slot:
            del self.slots[slot.base_path]
        self._templates = {k: v for k, v in self._templates.items() if k[0] != slot.base_path}
        await slot.engine.stop()

    async def shutdown(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reaper
            self._reaper = None
        self.deployments.clear()
        await self.scorers.shutdown()
        for slot in list(self.slots.values()):
            with contextlib.suppress(Exception):
                await self._stop_slot(slot)


def load_tokenizer(path: str) -> Any:
    """The tokenizer of a model folder (or hub id), or the one transformers rebuilds from a GGUF file's own
    vocabulary when a GGUF file comes without its folder."""
    from transformers import AutoTokenizer

    try:
        if path.endswith(".gguf") and os.path.isfile(path):
            return AutoTokenizer.from_pretrained(os.path.dirname(path) or ".", gguf_file=os.path.basename(path))
        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise EngineError(f"cannot load the tokenizer of {path}: {exc}") from exc

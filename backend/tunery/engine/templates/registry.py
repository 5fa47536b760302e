"""The one registry of chat templates: ``register_template`` adds a family, ``get_template`` finds one."""

from __future__ import annotations

import difflib
import importlib
from dataclasses import replace
from typing import Any

from tunery.engine.templates.base import ChatTemplate, TemplateError
from tunery.engine.templates.template import Template

#: Modules under ``families`` that register templates when imported.
FAMILY_MODULES = ("basic", "chatml", "qwen3", "llama", "mistral", "gemma", "phi", "deepseek", "glm", "baichuan")

_TEMPLATES: dict[str, Template] = {}
_loaded = False


def register_template(template: Template, *, name: str | None = None, **changes: Any) -> Template:
    """Register ``template`` (optionally renamed and with fields changed) and return what was stored.

    A name can be registered once; a second registration of the same name is an error.
    """
    stored = replace(template, name=name or template.name, **changes)
    if stored.name in _TEMPLATES:
        raise TemplateError(f"template {stored.name!r} is already registered")
    _TEMPLATES[stored.name] = stored
    return stored


def _load_families() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in FAMILY_MODULES:
            importlib.import_module(f"tunery.engine.templates.families.{module}")


def list_templates() -> list[str]:
    """Names of every registered template (``auto`` not included)."""
    _load_families()
    return sorted(_TEMPLATES)


def get_template(name: str | None, tokenizer: Any = None) -> ChatTemplate:
    """The template called ``name``; ``None`` or ``"auto"`` wraps the tokenizer's own chat template.

    Generic templates (default, alpaca, ...) take bos/eos from ``tokenizer``.
    """
    from tunery.engine.templates.auto import TokenizerTemplate

    if name is None or name == "auto":
        return TokenizerTemplate.from_tokenizer(tokenizer)
    _load_families()
    template = _TEMPLATES.get(name)
    if template is None:
        close = difflib.get_close_matches(name, list(_TEMPLATES), n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise TemplateError(f"unknown chat template {name!r}{hint} (known: {', '.join(sorted(_TEMPLATES))}, or 'auto')")
    if template.tokenizer_tokens:
        if tokenizer is None:
            raise TemplateError(f"template {name!r} takes bos/eos from the tokenizer; pass the tokenizer")
        return template.with_tokens(tokenizer.bos_token, tokenizer.eos_token)
    return template

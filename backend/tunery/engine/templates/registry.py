"""The one registry of chat templates: ``register_template`` adds a family, ``get_template`` finds one
(optionally switched to another tool format, the spec's ``tool_format``)."""

from __future__ import annotations

import difflib
import importlib
from dataclasses import replace
from typing import Any

from tunery.engine.templates.base import ChatTemplate, TemplateError
from tunery.engine.templates.template import Template
from tunery.engine.templates.tools import ToolFormat, registered_tool_formats

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


def tool_format_names() -> list[str]:
    """Names of every registered tool format (the spec's ``TOOL_FORMATS`` lists the same)."""
    _load_families()
    return sorted(registered_tool_formats())


def get_tool_format(name: str) -> ToolFormat:
    _load_families()
    formats = registered_tool_formats()
    if name not in formats:
        raise TemplateError(f"unknown tool format {name!r} (known: {', '.join(sorted(formats))})")
    return formats[name]


def with_tool_format(template: ChatTemplate, name: str) -> ChatTemplate:
    """``template`` writing tools (definitions and calls) in the format ``name``, as LLaMA-Factory's
    ``tool_format`` replaces a template's tool formatters. Templates that place tools their own way
    (Mistral) keep their format, and formats that need such a template are not moved to another one."""
    tool_format = get_tool_format(name)
    if not isinstance(template, Template):
        raise TemplateError(
            f"tool_format {name!r} needs a named chat template (template: ...); {template.name!r} is the "
            "tokenizer's own chat template, which writes tools its own way"
        )
    if template.tool_format.name == name:
        return template
    if template.fixed_tool_format:
        raise TemplateError(
            f"template {template.name!r} writes tools only as {template.tool_format.name!r}; remove tool_format"
        )
    if tool_format.own_templates_only:
        raise TemplateError(f"tool format {name!r} is written only by its own templates, not by {template.name!r}")
    return replace(template, tool_format=tool_format)


def get_template(name: str | None, tokenizer: Any = None, *, tool_format: str | None = None) -> ChatTemplate:
    """The template called ``name``; ``None`` or ``"auto"`` wraps the tokenizer's own chat template.

    Generic templates (default, alpaca, ...) take bos/eos from ``tokenizer``. ``tool_format`` switches the
    template to that tool format (see :func:`with_tool_format`).
    """
    template = _lookup(name, tokenizer)
    return with_tool_format(template, tool_format) if tool_format is not None else template


def _lookup(name: str | None, tokenizer: Any) -> ChatTemplate:
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

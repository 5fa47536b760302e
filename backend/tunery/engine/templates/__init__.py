"""Chat templates: one registry of model families' conversation formats.

``get_template(name, tokenizer)`` gives a template; ``render_turns`` / ``render_prompt`` write
conversations as text; ``apply_template_to_tokenizer`` stores the matching Jinja in a tokenizer.
"""

from tunery.engine.templates.auto import TokenizerTemplate
from tunery.engine.templates.base import ChatTemplate, TemplateError, ToolCall
from tunery.engine.templates.conversation import parse_function_content, parse_tools, to_hf_messages
from tunery.engine.templates.registry import (
    get_template,
    list_templates,
    register_template,
    tool_format_names,
    with_tool_format,
)
from tunery.engine.templates.saving import apply_template_to_tokenizer
from tunery.engine.templates.template import Template

__all__ = [
    "ChatTemplate",
    "Template",
    "TemplateError",
    "TokenizerTemplate",
    "ToolCall",
    "apply_template_to_tokenizer",
    "get_template",
    "list_templates",
    "parse_function_content",
    "parse_tools",
    "register_template",
    "to_hf_messages",
    "tool_format_names",
    "with_tool_format",
]

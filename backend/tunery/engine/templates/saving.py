"""Give a trained model's tokenizer a chat template that renders like the template it was trained with."""

from __future__ import annotations

from typing import Any

from tunery.engine.templates.base import ChatTemplate


def apply_template_to_tokenizer(template: ChatTemplate, tokenizer: Any) -> None:
    """Set ``tokenizer.chat_template`` to ``template``'s Jinja (saved with the tokenizer)."""
    tokenizer.chat_template = template.to_jinja()

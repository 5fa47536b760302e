"""Baichuan 2 chat: user and assistant marker tokens, no end token between turns (efficient eos)."""

from __future__ import annotations

from tunery.engine.templates.registry import register_template
from tunery.engine.templates.template import Template

# Baichuan2-Chat ships no Jinja; its build_chat_input writes system text, then <reserved_106> before
# each user text and <reserved_107> before each answer. The trainer appends eos to the last answer.
register_template(
    Template(
        name="baichuan2",
        user="<reserved_106>{content}",
        assistant_open="<reserved_107>",
        assistant="{content}",
        eos_token="</s>",
        stop_words=["</s>"],
        efficient_eos=True,
    )
)

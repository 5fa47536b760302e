"""ChatML formats: chatml, yi, qwen (Qwen 2.5 with Hermes-style tools)."""

from __future__ import annotations

from tunery.engine.templates.registry import register_template
from tunery.engine.templates.template import Template
from tunery.engine.templates.tools import QwenTools

CHATML = Template(
    name="chatml",
    system="<|im_start|>system\n{content}<|im_end|>\n",
    user="<|im_start|>user\n{content}<|im_end|>\n",
    observation="<|im_start|>tool\n{content}<|im_end|>\n",
    assistant_open="<|im_start|>assistant\n",
    assistant="{content}<|im_end|>\n",
    eos_token="<|im_end|>",
    stop_words=["<|im_end|>"],
)

register_template(CHATML)
register_template(CHATML, name="yi")

register_template(
    CHATML,
    name="qwen",
    observation="<|im_start|>user\n<tool_response>\n{content}\n</tool_response><|im_end|>\n",
    default_system="You are Qwen, created by Alibaba Cloud. You are a helpful assistant.",
    tool_format=QwenTools(),
)

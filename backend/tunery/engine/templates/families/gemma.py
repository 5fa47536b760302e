"""Google Gemma formats: gemma (1 and 2) and gemma3 (text part)."""

from __future__ import annotations

from tunery.engine.templates.registry import register_template
from tunery.engine.templates.template import Template

# The answer role is "model"; texts are trimmed. Gemma 3 puts the system text before the first user
# text ("system\n\nuser"); Gemma 1/2 refuse a system message, so gemma uses the Gemma 3 placement.
GEMMA = Template(
    name="gemma",
    prefix="{bos}",
    user="<start_of_turn>user\n{content}<end_of_turn>\n",
    observation="<start_of_turn>tool\n{content}<end_of_turn>\n",
    assistant_open="<start_of_turn>model\n",
    assistant="{content}<end_of_turn>\n",
    system_in_user="{system}\n\n{content}",
    bos_token="<bos>",
    eos_token="<end_of_turn>",
    stop_words=["<end_of_turn>"],
    strip_content=True,
)

register_template(GEMMA)
register_template(GEMMA, name="gemma3")

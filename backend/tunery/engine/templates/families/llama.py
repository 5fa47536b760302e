"""Meta Llama formats: llama3 (tools as in Llama 3.1), llama2."""

from __future__ import annotations

from tunery.engine.templates.registry import register_template
from tunery.engine.templates.template import Template
from tunery.engine.templates.tools import Llama3Tools

# Llama 3 trims every text (`| trim` in its chat template). With tools, the system message follows
# Llama 3.1 with tools in the system message (tools_in_user_message=false); tool results use `ipython`.
register_template(
    Template(
        name="llama3",
        prefix="{bos}",
        system="<|start_header_id|>system<|end_header_id|>\n\n{content}<|eot_id|>",
        user="<|start_header_id|>user<|end_header_id|>\n\n{content}<|eot_id|>",
        observation="<|start_header_id|>ipython<|end_header_id|>\n\n{content}<|eot_id|>",
        assistant_open="<|start_header_id|>assistant<|end_header_id|>\n\n",
        assistant="{content}<|eot_id|>",
        bos_token="<|begin_of_text|>",
        eos_token="<|eot_id|>",
        stop_words=["<|eot_id|>", "<|eom_id|>"],
        tool_format=Llama3Tools(),
        strip_content=True,
    )
)

# Llama 2 chat: every user turn opens with bos; the system goes into the first user turn; user and
# answer texts are stripped, answers are wrapped in spaces (" answer </s>") as in its chat template.
register_template(
    Template(
        name="llama2",
        user="{bos}[INST] {content} [/INST]",
        assistant=" {content} {eos}",
        system_in_user="<<SYS>>\n{system}\n<</SYS>>\n\n{content}",
        strip_merged=True,
        bos_token="<s>",
        eos_token="</s>",
        stop_words=["</s>"],
        strip_content=True,
    )
)

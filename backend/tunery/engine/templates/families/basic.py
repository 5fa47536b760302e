"""Generic formats that take bos/eos from the tokenizer: empty, default, alpaca, vicuna."""

from __future__ import annotations

from tunery.engine.templates.registry import register_template
from tunery.engine.templates.template import Template

# Plain concatenation (base models, continued pretraining); no end token, as in LLaMA-Factory.
register_template(Template(name="empty", assistant="{content}", tokenizer_tokens=True))

register_template(
    Template(
        name="default",
        system="System: {content}{eos}\n",
        user="Human: {content}{eos}\n",
        assistant_open="Assistant:",
        assistant="{content}{eos}\n",
        tokenizer_tokens=True,
    )
)

register_template(
    Template(
        name="alpaca",
        user="### Instruction:\n{content}\n\n",
        assistant_open="### Response:\n",
        assistant="{content}{eos}\n\n",
        default_system=(
            "Below is an instruction that describes a task. "
            "Write a response that appropriately completes the request.\n\n"
        ),
        tokenizer_tokens=True,
    )
)

# FastChat's vicuna_v1.1 layout: "SYSTEM USER: q ASSISTANT: a</s>USER: ..." (LLaMA-Factory drops the
# spaces after the system text and before the answer; we follow FastChat, which the models were tuned on).
register_template(
    Template(
        name="vicuna",
        system="{content} ",
        user="USER: {content} ",
        assistant_open="ASSISTANT:",
        assistant=" {content}{eos}",
        default_system=(
            "A chat between a curious user and an artificial intelligence assistant. "
            "The assistant gives helpful, detailed and polite answers to the user's questions."
        ),
        tokenizer_tokens=True,
    )
)

# Few-shot benchmark prompts (LLaMA-Factory's eval YAMLs use it): answers end with a blank line, no chat markup.
register_template(Template(name="fewshot", assistant="{content}\n\n", efficient_eos=True, tokenizer_tokens=True))

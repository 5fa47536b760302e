"""Microsoft Phi formats: phi3 (Phi-3 / Phi-3.5 mini) and phi4."""

from __future__ import annotations

from tunery.engine.templates.registry import register_template
from tunery.engine.templates.template import Template

# Phi-3's template ends a complete conversation with eos (<|endoftext|>) after the last <|end|>.
register_template(
    Template(
        name="phi3",
        system="<|system|>\n{content}<|end|>\n",
        user="<|user|>\n{content}<|end|>\n",
        assistant_open="<|assistant|>\n",
        assistant="{content}<|end|>\n",
        suffix="{eos}",
        bos_token="<s>",
        eos_token="<|endoftext|>",
        stop_words=["<|end|>"],
    )
)

register_template(
    Template(
        name="phi4",
        system="<|im_start|>system<|im_sep|>{content}<|im_end|>",
        user="<|im_start|>user<|im_sep|>{content}<|im_end|>",
        assistant_open="<|im_start|>assistant<|im_sep|>",
        assistant="{content}<|im_end|>",
        eos_token="<|im_end|>",
        stop_words=["<|im_end|>"],
    )
)

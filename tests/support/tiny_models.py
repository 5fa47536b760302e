"""Tiny models built from configs with a locally trained tokenizer: no hub download, ever.

Used by tests, the benchmark and the demo. Head dimension is 32 so vLLM can load them too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "llamafactory-demo"

#: Special tokens every tiny tokenizer knows, covering the chat templates' markers.
SPECIAL_TOKENS = [
    "<|endoftext|>", "<s>", "</s>", "<unk>", "<pad>", "<|im_start|>", "<|im_end|>",
    "<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
    "<|eom_id|>", "<|python_tag|>", "[INST]", "[/INST]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]",
    "[TOOL_CALLS]", "[TOOL_RESULTS]", "[/TOOL_RESULTS]", "<bos>", "<eos>", "<start_of_turn>",
    "<end_of_turn>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>", "<|observation|>",
    "<think>", "</think>", "<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>",
    "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>",
    "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>", "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>",
    "<｜tool▁sep｜>", "<｜tool▁outputs▁begin｜>", "<｜tool▁outputs▁end｜>", "<｜tool▁output▁begin｜>",
    "<｜tool▁output▁end｜>", "[gMASK]", "<sop>", "<reserved_106>", "<reserved_107>",
    "<|im_sep|>", "<|tool|>", "<|/tool|>", "<|tool_call|>", "<|/tool_call|>",
]

#: bos / eos / pad token per architecture family.
FAMILY_TOKENS: dict[str, dict[str, str | None]] = {
    "llama": {"bos": "<|begin_of_text|>", "eos": "<|eot_id|>", "pad": "<pad>"},
    "qwen2": {"bos": None, "eos": "<|im_end|>", "pad": "<|endoftext|>"},
    "mistral": {"bos": "<s>", "eos": "</s>", "pad": "<pad>"},
    "gemma": {"bos": "<bos>", "eos": "<eos>", "pad": "<pad>"},
    "phi3": {"bos": "<s>", "eos": "<|end|>", "pad": "<|endoftext|>"},
}


def _corpus() -> list[str]:
    texts: list[str] = []
    for name in ("alpaca_en_demo.json", "alpaca_zh_demo.json", "identity.json", "glaive_toolcall_en_demo.json"):
        path = SHARED_DATA / name
        if path.exists():
            for row in json.loads(path.read_text(encoding="utf-8")):
                texts.append(json.dumps(row, ensure_ascii=False))
    texts.append("The quick brown fox jumps over the lazy dog. 0123456789 {}[]\":,")
    return texts


def build_tokenizer(folder: Path, family: str = "llama", vocab_size: int = 2048) -> Any:
    """Train a byte-level BPE tokenizer on the demo data and save it as a fast HF tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    names = FAMILY_TOKENS[family]
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=names["bos"],
        eos_token=names["eos"],
        pad_token=names["pad"],
        unk_token="<unk>",
        model_max_length=4096,
    )
    fast.save_pretrained(folder)
    return fast


def build_model(folder: Path, family: str = "llama", layers: int = 2, seed: int = 0) -> Path:
    """Save a randomly initialised tiny model of ``family`` plus its tokenizer into ``folder``."""
    import torch
    from transformers import (
        AutoModelForCausalLM,
        GemmaConfig,
        LlamaConfig,
        MistralConfig,
        Phi3Config,
        Qwen2Config,
    )

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(folder, family)
    common: dict[str, Any] = {
        "vocab_size": len(tokenizer),
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": layers,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "max_position_embeddings": 4096,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "tie_word_embeddings": False,
    }
    configs = {
        "llama": lambda: LlamaConfig(**common),
        "qwen2": lambda: Qwen2Config(**common),
        "mistral": lambda: MistralConfig(**common, sliding_window=None),
        "gemma": lambda: GemmaConfig(**common, head_dim=32),
        "phi3": lambda: Phi3Config(**common),
    }
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(configs[family]())
    model.save_pretrained(folder)
    return folder

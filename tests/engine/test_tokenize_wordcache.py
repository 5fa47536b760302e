"""The word-cache encoder gives exactly the Rust tokenizer's ids, and steps aside where it cannot."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from tests.engine.tokenize_support import load_tokenizer
from tunery.engine.tokenize.text import encode_pool
from tunery.engine.tokenize.wordcache import WordCacheEncoder, _ascii_classes

#: Llama 3's pre-tokenizer regex (a Split + byte-level pipeline).
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
    r"|\s+(?!\S)|\s+"
)
SPECIALS = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|im_start|>", "[INST]"]
PIECES = [
    "Hello",
    " world",
    "'s",
    "'LL",
    " it's",
    "12345",
    " 3.14",
    "\n",
    "\n\n",
    "  ",
    "\t",
    "\r\n",
    " \n ",
    '{"a": [1, 2]}',
    "x_y",
    "--",
    "!!",
    " ?",
    "\x0b",
    "\x0c",
    "\x1c",
    "\x7f",
    "\x00",
    "CamelCase",
    "snake_case",
    "    indented",
]
UNICODE = ["café", "naïve", "中文字符", "emoji 🎉", "’quoted’", "Ωmega", "١٢٣"]


def _texts(seed: int, count: int = 300, unicode: bool = False) -> list[str]:
    rng = random.Random(seed)
    vocab = PIECES + SPECIALS + (UNICODE if unicode else [])
    texts = ["".join(rng.choice(vocab) for _ in range(rng.randint(0, 25))) for _ in range(count)]
    texts += ["".join(chr(rng.randrange(128)) for _ in range(rng.randint(1, 60))) for _ in range(count)]
    return texts


def _reference(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    return [enc.ids for enc in tokenizer.backend_tokenizer.encode_batch_fast(texts, add_special_tokens=False)]


def _with_pre_tokenizer(tokenizer: Any, pre_tokenizer: dict[str, Any]) -> Any:
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    state = json.loads(tokenizer.backend_tokenizer.to_str())
    state["pre_tokenizer"] = pre_tokenizer
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(json.dumps(state)))


@pytest.fixture(scope="module")
def tokenizer(tiny_llama: Path) -> Any:
    return load_tokenizer(tiny_llama)


@pytest.mark.parametrize("unicode", [False, True])
def test_same_ids_as_the_tokenizer_on_random_text(tokenizer: Any, unicode: bool) -> None:
    encoder = WordCacheEncoder.for_tokenizer(tokenizer)
    assert encoder is not None
    texts = _texts(seed=7, unicode=unicode)
    assert encoder.encode(texts) == _reference(tokenizer, texts)
    pool = encode_pool(tokenizer, texts + texts[:50])  # repeated texts share their ids
    assert [pool.get(i) for i in range(len(pool))] == _reference(tokenizer, texts + texts[:50])


def test_same_ids_with_a_split_regex_pre_tokenizer(tokenizer: Any) -> None:
    llama3 = _with_pre_tokenizer(
        tokenizer,
        {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": LLAMA3_PATTERN}, "behavior": "Isolated", "invert": False},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
            ],
        },
    )
    encoder = WordCacheEncoder.for_tokenizer(llama3)
    assert encoder is not None
    texts = _texts(seed=11, unicode=True)
    assert encoder.encode(texts) == _reference(llama3, texts)


def test_added_tokens_split_like_the_tokenizer(tiny_llama: Path) -> None:
    tokenizer = load_tokenizer(tiny_llama)
    tokenizer.add_tokens(["lo wor", "<|eot"])  # normal (normalized) tokens overlapping words and a special
    encoder = WordCacheEncoder.for_tokenizer(tokenizer)
    assert encoder is not None
    texts = ["hello world<|eot_id|>", "<|eot<|eot_id|>lo wor", *_texts(seed=3, count=100)]
    assert encoder.encode(texts) == _reference(tokenizer, texts)


@pytest.mark.parametrize(
    "pre_tokenizer",
    [
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True},
        {"type": "Whitespace"},
    ],
)
def test_other_pipelines_use_the_tokenizer(tokenizer: Any, pre_tokenizer: dict[str, Any]) -> None:
    other = _with_pre_tokenizer(tokenizer, pre_tokenizer)
    assert WordCacheEncoder.for_tokenizer(other) is None
    texts = _texts(seed=5, count=40)
    pool = encode_pool(other, texts)
    assert [pool.get(i) for i in range(len(pool))] == _reference(other, texts)


def test_split_special_tokens_uses_the_tokenizer(tiny_llama: Path) -> None:
    from transformers import AutoTokenizer

    splitting = AutoTokenizer.from_pretrained(tiny_llama, split_special_tokens=True)
    if not splitting.backend_tokenizer.encode_special_tokens:
        pytest.skip("this transformers version splits special tokens in Python")
    assert WordCacheEncoder.for_tokenizer(splitting) is None


def test_unicode_classes_are_spelled_out_for_ascii() -> None:
    assert _ascii_classes(r" ?\p{L}+|[^\s\p{L}\p{N}]+") == r" ?[A-Za-z]+|[^\sA-Za-z0-9]+"
    assert _ascii_classes(r"\p{Lu}") is None and _ascii_classes(r"\P{L}") is None

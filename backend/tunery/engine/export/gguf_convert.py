"""llama.cpp's own tools, run in a child process by :mod:`tunery.engine.export.gguf`: a cancel can stop them at
once, and the converter's vendored ``gguf-py`` (which it puts first on ``sys.path``) stays out of the engine.

    python -m tunery.engine.export.gguf_convert convert LLAMA_CPP_DIR MODEL_DIR OUTFILE OUTTYPE [MODEL_NAME]
    python -m tunery.engine.export.gguf_convert quantize SOURCE OUTFILE TYPE

``convert`` runs ``convert_hf_to_gguf.py`` unchanged except for fall-backs where llama.cpp's tables do not know a
model (locally trained tokenizers such as the test fixtures', untied output layers):

- the BPE pre-tokenizer is recognised by hashing the token ids of a fixed text; for an unknown hash the tokenizer's
  own split is compared with llama.cpp's splits (LLAMA_CPP_SPLITS) and the one that cuts every SPLIT_TEXTS text
  the same way is used; none -> the conversion fails with a clear message;
- architectures whose vocabulary code insists on a SentencePiece ``tokenizer.model`` (gemma, phi3) write a
  byte-level BPE ``tokenizer.json`` the way llama.cpp writes GPT-2 style vocabularies;
- a model with its own output layer (``tie_word_embeddings`` false) converted to an architecture whose GGUF has
  none (llama.cpp's gemma reuses the token embeddings) fails instead of answering differently.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("tunery.gguf_convert")

#: exit status of ``convert`` when the tokenizer's pre-tokenizer cannot be told (the message says why)
EXIT_UNKNOWN_PRE_TOKENIZER = 3
#: exit status of ``convert`` when llama.cpp has no converter for the architecture
EXIT_UNSUPPORTED = 4
#: the line the child prints before such an exit; the parent shows the rest of the line to the user
PROBLEM_PREFIX = "TUNERY-GGUF-PROBLEM: "

#: the quantizer's file types, by our spelling (llama.cpp's ``LLAMA_FTYPE_MOSTLY_<name>``)
QUANTIZE_TYPES = ("Q4_0", "Q4_K_M", "Q8_0")


#: llama.cpp's pre-tokenizer splits (src/llama-vocab.cpp, applied in order) for the names the fall-back may pick
LLAMA_CPP_SPLITS: dict[str, tuple[str, ...]] = {
    "gpt-2": (r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)",),
    "llama-bpe": (
        r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
        r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    ),
    "qwen2": (
        r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
        r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    ),
}
#: texts the tokenizer's own split must cut exactly like llama.cpp's (spaces, digits, contractions, scripts)
SPLIT_TEXTS = (
    "\n \n\n \t\t \t\n  \n   \n    \n     x",
    "I've been 'told he's there, 'RE you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL",
    '3 33 333 3333 33333 3.3 3..3 1314151天 ------======= !!!!!!?????? ```````""""......',
    "Hello World!  Two  spaces\tand\ttabs.\r\nNew line\n\nend  ",
    "🚀 (normal) 😶\u200d🌫️ ✅ 🦙🦙 កាន់តែពិសេសអាច😁 我想在apple工作 нещо на Български émigré naïve",
)
#: normalizers llama.cpp's BPE tokenizers leave out without changing ordinary (already composed) text
TOLERATED_NORMALIZERS = (None, "NFC")


class UnknownPreTokenizer(Exception):
    pass


def _regex_split(patterns: tuple[str, ...], text: str) -> list[str]:
    """llama.cpp's unicode_regex_split: each pattern splits every piece further; unmatched text stays a piece."""
    import regex

    pieces = [text]
    for pattern in patterns:
        out: list[str] = []
        for piece in pieces:
            position = 0
            for match in regex.finditer(pattern, piece):
                if match.start() > position:
                    out.append(piece[position : match.start()])
                if match.end() > match.start():
                    out.append(match.group())
                position = match.end()
            if position < len(piece):
                out.append(piece[position:])
        pieces = out
    return pieces


def _describe(tokenizer: Any) -> dict[str, Any]:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return {}
    described: dict[str, Any] = json.loads(backend.to_str())
    return described


def pre_tokenizer_of(tokenizer: Any) -> str | None:
    """llama.cpp's name for the pre-tokenizer ``tokenizer`` (a loaded transformers tokenizer) really uses, told by
    behaviour: a byte-level BPE whose split of SPLIT_TEXTS equals one of LLAMA_CPP_SPLITS; else None."""
    described = _describe(tokenizer)
    if (described.get("model") or {}).get("type") != "BPE" or "ByteLevel" not in json.dumps(
        described.get("pre_tokenizer")
    ):
        return None
    normalizer = described.get("normalizer")
    if (normalizer or {}).get("type") not in TOLERATED_NORMALIZERS:
        return None
    pre_tokenizer = tokenizer.backend_tokenizer.pre_tokenizer
    own = [[text[start:end] for _, (start, end) in pre_tokenizer.pre_tokenize_str(text)] for text in SPLIT_TEXTS]
    for name, patterns in LLAMA_CPP_SPLITS.items():
        if own == [_regex_split(patterns, text) for text in SPLIT_TEXTS]:
            return name
    return None


def _is_bpe_tokenizer(model_dir: Path) -> bool:
    path = model_dir / "tokenizer.json"
    if not path.is_file():
        return False
    return bool((json.loads(path.read_text(encoding="utf-8")).get("model") or {}).get("type") == "BPE")


def _patch_converter(base: Any, convert_module: Any) -> None:
    """Install the tokenizer fall-backs described in the module docstring on llama.cpp's converter classes."""
    original_pre: Callable[[Any, Any], str] = base.TextModel.get_vocab_base_pre

    def get_vocab_base_pre(self: Any, tokenizer: Any) -> str:
        try:
            return original_pre(self, tokenizer)
        except NotImplementedError:
            name = pre_tokenizer_of(tokenizer)
            if name is None:
                described = _describe(tokenizer)
                raise UnknownPreTokenizer(
                    "llama.cpp does not know this tokenizer's BPE pre-tokenizer (its token hash is in none of "
                    "convert_hf_to_gguf's tables) and its split matches none of llama.cpp's "
                    f"{', '.join(LLAMA_CPP_SPLITS)} (normalizer {json.dumps(described.get('normalizer'))}, "
                    f"pre_tokenizer {json.dumps(described.get('pre_tokenizer'))}); a GGUF file would tokenize "
                    "differently from the model, so none is written"
                ) from None
            log.warning("unknown BPE pre-tokenizer hash; the tokenizer splits text like llama.cpp's %r", name)
            return name

    base.TextModel.get_vocab_base_pre = get_vocab_base_pre
    original_get_class: Callable[..., Any] = convert_module.get_model_class

    def get_model_class(*args: Any, **kwargs: Any) -> Any:
        model_class = original_get_class(*args, **kwargs)
        original_set_vocab: Callable[[Any], None] = model_class.set_vocab

        def set_vocab(self: Any) -> None:
            folder = Path(self.dir_model)
            if (folder / "tokenizer.model").is_file() or not _is_bpe_tokenizer(folder):
                original_set_vocab(self)
                return
            try:
                original_set_vocab(self)
            except (FileNotFoundError, ValueError) as exc:
                if "tokenizer.model" not in str(exc):
                    raise
                log.warning("no tokenizer.model: writing the BPE tokenizer.json as a GPT-2 style vocabulary")
                self._set_vocab_gpt2()

        model_class.set_vocab = set_vocab
        return model_class

    convert_module.get_model_class = get_model_class


def _dropped_output_layer(model_dir: Path, outfile: Path) -> str | None:
    """Why the written file is not the model when the model has an output layer of its own and the file none."""
    import gguf  # the converter's own copy (first on sys.path)
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_dir)
    if getattr(config.get_text_config(), "tie_word_embeddings", True):
        return None
    reader = gguf.GGUFReader(str(outfile))
    names = {tensor.name for tensor in reader.tensors}
    if "output.weight" in names or "token_embd.weight" not in names:
        return None
    arch = reader.fields["general.architecture"].contents()
    return (
        f"llama.cpp's {arch} architecture always reuses the token embeddings as the output layer, and this model "
        "has an output layer of its own (tie_word_embeddings is false): a GGUF file would answer differently, so "
        "none is written"
    )


def convert(llama_cpp_dir: Path, model_dir: Path, outfile: Path, outtype: str, model_name: str | None) -> int:
    sys.path.insert(0, str(llama_cpp_dir))
    import convert_hf_to_gguf  # type: ignore[import-not-found]  # llama.cpp's script (puts its gguf-py first)
    from conversion import base  # type: ignore[import-not-found]

    _patch_converter(base, convert_hf_to_gguf)
    argv = ["convert_hf_to_gguf.py", str(model_dir), "--outfile", str(outfile), "--outtype", outtype.lower()]
    if model_name:
        argv += ["--model-name", model_name]
    sys.argv = argv
    try:
        convert_hf_to_gguf.main()
    except UnknownPreTokenizer as exc:
        print(PROBLEM_PREFIX + str(exc), flush=True)
        return EXIT_UNKNOWN_PRE_TOKENIZER
    except SystemExit as exc:  # the script exits 1 for an architecture it has no converter for
        if exc.code not in (0, None):
            return EXIT_UNSUPPORTED
    problem = _dropped_output_layer(model_dir, outfile)
    if problem is not None:
        print(PROBLEM_PREFIX + problem, flush=True)
        return EXIT_UNSUPPORTED
    return 0


def quantize(source: Path, outfile: Path, kind: str) -> int:
    """llama.cpp's quantizer (``llama-quantize``) through llama-cpp-python's binding."""
    import llama_cpp

    if kind not in QUANTIZE_TYPES:
        raise SystemExit(f"unknown quantization {kind!r} (expected one of {', '.join(QUANTIZE_TYPES)})")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{kind}")
    params.nthread = os.cpu_count() or 1
    status = llama_cpp.llama_model_quantize(str(source).encode(), str(outfile).encode(), ctypes.byref(params))
    if status != 0:
        print(PROBLEM_PREFIX + f"llama.cpp's quantizer failed ({status}) on {source.name}", flush=True)
        return 1
    return 0


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:%(name)s:%(message)s")
    if len(argv) >= 5 and argv[0] == "convert":
        name = argv[5] if len(argv) > 5 else None
        return convert(Path(argv[1]), Path(argv[2]), Path(argv[3]), argv[4], name)
    if len(argv) == 4 and argv[0] == "quantize":
        return quantize(Path(argv[1]), Path(argv[2]), argv[3])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The merged model: the base loaded in the export dtype, each adapter of ``adapter_name_or_path`` merged in
order (LoRA, DoRA, PiSSA saved for the original base: peft's ``merge_and_unload``), then saved as LLaMA-Factory's
export does (sharded at ``export_size`` GB, tokenizer padding on the left) plus the chat template and a
generation config from the generation section. A full fine-tune (no adapter) is saved as it is.

The merge check: on the verification prompts, the logits of base + adapter (unmerged, peft computing the
adapter's path) against the merged weights, after each adapter; ``max_logit_diff`` is the largest difference
(compared in float32; computed in the export dtype, as LF merges in the dtype it loads: exact for float32).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from tunery.engine.export.verify import max_logit_diff, prompt_logits
from tunery.engine.templates import ChatTemplate, TemplateError, apply_template_to_tokenizer, get_template
from tunery.engine.train.cancel import CancelRequest
from tunery.engine.train.errors import TrainingError, invalid_spec
from tunery.spec import JobSpec
from tunery.spec.data import DataSection
from tunery.spec.export import ExportSection

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

#: Files that hold a saved model's weights (removed from export_dir before a new merged model moves in).
WEIGHT_FILES: tuple[str, ...] = (
    "model.safetensors",
    "model-*-of-*.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model-*-of-*.bin",
    "pytorch_model.bin.index.json",
)


@dataclass
class MergedModel:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    template: ChatTemplate | None
    dtype: torch.dtype
    #: largest logit difference merged vs base + adapters (None: no adapter, or not verified)
    max_logit_diff: float | None


# ---- what is loaded, where, in which dtype ------------------------------------------------------------


def export_dtype(spec: JobSpec, config: Any) -> torch.dtype:
    """``infer_dtype``, or for ``auto`` the dtype the weights are stored in (float32 when the config has
    none). LF's auto tries half precision on a GPU; Tunery keeps the stored precision on every machine so an
    export is the same file wherever it runs. float16 is allowed on a CPU: the weights are only saved."""
    choice = spec.model.infer_dtype
    if choice != "auto":
        return getattr(torch, choice)  # type: ignore[no-any-return]
    stored = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    if isinstance(stored, str):
        stored = getattr(torch, stored, None)
    return stored if isinstance(stored, torch.dtype) and stored.is_floating_point else torch.float32


def merge_device(spec: JobSpec) -> torch.device:
    """``export_device``: cpu (LF's default), or auto = the GPU when there is one."""
    if spec.export.export_device == "auto" and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def shard_size(export: ExportSection) -> str:
    """``max_shard_size`` of save_pretrained: ``export_size`` GB, as LF passes it."""
    return f"{export.export_size}GB"


def load_tokenizer_and_template(spec: JobSpec) -> tuple[PreTrainedTokenizerBase, ChatTemplate | None]:
    """The tokenizer (tokens of the spec added) and the chat template the model was trained with
    (``template``; none when neither the spec nor the tokenizer has one: the export then has no chat template)."""
    from tunery.engine.train.model import load_tokenizer

    tokenizer = load_tokenizer(spec.model)
    try:
        template = get_template(spec.data.template, tokenizer, tool_format=spec.data.tool_format)
    except TemplateError as exc:
        if spec.data.template not in (None, "auto"):
            raise invalid_spec("template", str(exc)) from exc
        return tokenizer, None
    return tokenizer, template


def load_merged(
    spec: JobSpec,
    tokenizer: PreTrainedTokenizerBase,
    template: ChatTemplate | None,
    prompts: list[list[int]],
    cancel: CancelRequest,
    log: Callable[[str], None],
) -> MergedModel:
    """The base in the export dtype on the merge device, with every adapter merged; ``prompts``: compare the
    logits before and after each merge (empty: no check)."""
    from transformers import AutoConfig

    from tunery.engine.train.model import (
        _forget_gguf_quantization,
        _from_pretrained,
        _resize_vocab,
        resolve_attention,
    )

    args = spec.model
    source = args.model_name_or_path
    common: dict[str, Any] = {"trust_remote_code": args.trust_remote_code, "revision": args.model_revision}
    common.update(cache_dir=args.cache_dir, token=args.hf_hub_token)
    if args.gguf_file:
        common["gguf_file"] = args.gguf_file
    try:
        config = AutoConfig.from_pretrained(source, **common)
    except (OSError, ValueError) as exc:
        raise invalid_spec("model_name_or_path", f"cannot load the model config from {source!r}: {exc}") from exc
    dtype = export_dtype(spec, config)
    log(f"loading {source} in {str(dtype).removeprefix('torch.')}")
    model: Any = _from_pretrained(args, dtype, resolve_attention(args), trainable=False)
    if args.gguf_file:
        _forget_gguf_quantization(model)
    _resize_vocab(model, tokenizer, args)
    model = model.to(merge_device(spec))
    model.eval()
    diffs: list[float] = []
    for path in args.adapter_name_or_path or []:
        cancel.raise_if_requested()
        model, diff = merge_adapter(model, path, prompts)
        if diff is not None:
            diffs.append(diff)
        log(f"merged adapter {path}" + ("" if diff is None else f" (max logit difference {diff:.2e})"))
    return MergedModel(model, tokenizer, template, dtype, max(diffs) if diffs else None)


def merge_adapter(model: Any, path: str, prompts: list[list[int]]) -> tuple[Any, float | None]:
    """``model`` with the adapter at ``path`` merged into its weights, and the merge check's difference."""
    from peft import PeftModel

    _check_adapter(path)
    try:
        with_adapter = PeftModel.from_pretrained(model, path)
    except (OSError, ValueError, KeyError) as exc:
        raise invalid_spec("adapter_name_or_path", f"cannot load adapter {path!r}: {exc}") from exc
    with_adapter.eval()
    reference = prompt_logits(with_adapter, prompts) if prompts else None
    merged = with_adapter.merge_and_unload()
    merged.eval()
    diff = None if reference is None else max_logit_diff(reference, prompt_logits(merged, prompts))
    return merged, diff


def _check_adapter(path: str) -> None:
    config_file = Path(path) / "adapter_config.json"
    if not config_file.is_file():
        return  # a hub id: peft downloads and checks it
    config = json.loads(config_file.read_text(encoding="utf-8"))
    if config.get("task_type") == "SEQ_CLS":
        raise invalid_spec(
            "adapter_name_or_path",
            f"{path} is a reward model's adapter (with a score head); export merges causal LM adapters",
        )


# ---- saving -----------------------------------------------------------------------------------------


def save_merged(merged: MergedModel, spec: JobSpec, folder: Path) -> None:
    """The merged model in ``folder`` (safetensors shards of ``export_size`` GB, its dtype in config.json),
    the tokenizer with the chat template, and generation_config.json."""
    model = merged.model
    model.config.use_cache = spec.model.use_cache  # ready for generation once loaded (LF's inference setting)
    try:
        model.save_pretrained(str(folder), max_shard_size=shard_size(spec.export))
    except NotImplementedError as exc:  # transformers 5 cannot reverse some architectures' weight conversion
        raise TrainingError("internal", f"transformers cannot save this architecture: {exc}") from exc
    write_generation_config(merged, spec, folder)
    save_tokenizer(merged, spec.data, folder)


def save_tokenizer(merged: MergedModel, data: DataSection, folder: Path) -> None:
    """LF's export: padding on the left (ready for batched generation); model_max_length = cutoff_len when
    the job sets it. Plus the chat template the model was trained with."""
    tokenizer = merged.tokenizer
    if merged.template is not None:
        apply_template_to_tokenizer(merged.template, tokenizer)
    tokenizer.padding_side = "left"
    tokenizer.init_kwargs["padding_side"] = "left"
    if data.cutoff_len != DataSection.model_fields["cutoff_len"].default:
        tokenizer.model_max_length = data.cutoff_len
        tokenizer.init_kwargs["model_max_length"] = data.cutoff_len
    tokenizer.save_pretrained(str(folder))


def stop_token_ids(tokenizer: Any, template: ChatTemplate | None) -> list[int]:
    """eos first, then every template stop word that is one token (an answer ends at any of them)."""
    ids: list[int] = []
    if isinstance(tokenizer.eos_token_id, int):
        ids.append(tokenizer.eos_token_id)
    vocab = tokenizer.get_vocab()
    for word in template.stop_words if template is not None else []:
        if word in vocab and int(vocab[word]) not in ids:
            ids.append(int(vocab[word]))
    return ids


def write_generation_config(merged: MergedModel, spec: JobSpec, folder: Path) -> None:
    """generation_config.json from the generation section; the sampling values only when do_sample (greedy
    decoding ignores them, and transformers refuses to save them with do_sample false)."""
    from transformers import GenerationConfig

    g, tokenizer = spec.generation, merged.tokenizer
    values: dict[str, Any] = {
        "do_sample": g.do_sample,
        "max_new_tokens": g.max_new_tokens,
        "repetition_penalty": g.repetition_penalty,
        "eos_token_id": stop_token_ids(tokenizer, merged.template),
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
    }
    if g.do_sample:
        values.update(temperature=g.temperature, top_p=g.top_p, top_k=g.top_k)
    GenerationConfig(**values).save_pretrained(str(folder))  # type: ignore[no-untyped-call]


def to_legacy_format(source: Path, target: Path) -> None:
    """Copy a saved model from ``source`` to ``target`` with its safetensors weights as pickled ``.bin`` files
    (transformers 4's names: pytorch_model.bin or pytorch_model-0000i-of-0000n.bin with its index)."""
    from safetensors.torch import load_file

    target.mkdir(parents=True, exist_ok=True)
    index_file = source / "model.safetensors.index.json"
    if index_file.is_file():
        index = json.loads(index_file.read_text(encoding="utf-8"))
        names = {name: _legacy_name(name) for name in sorted(set(index["weight_map"].values()))}
        for name, new in names.items():
            torch.save(load_file(str(source / name)), target / new)
        index["weight_map"] = {key: names[file] for key, file in index["weight_map"].items()}
        (target / "pytorch_model.bin.index.json").write_text(json.dumps(index, indent=2), encoding="utf-8")
    else:
        torch.save(load_file(str(source / "model.safetensors")), target / "pytorch_model.bin")
    for path in source.iterdir():
        if path.is_file() and not path.name.endswith(".safetensors") and path != index_file:
            shutil.copy2(path, target / path.name)


def _legacy_name(name: str) -> str:
    return "pytorch_" + name.removesuffix(".safetensors") + ".bin"


def copy_side_files(source: Path, target: Path) -> None:
    """Everything of a saved model but its weights: config, tokenizer, chat template, generation config."""
    weights = {path for pattern in WEIGHT_FILES for path in source.glob(pattern)}
    for path in source.iterdir():
        if path.is_file() and path not in weights:
            shutil.copy2(path, target / path.name)


def remove_weight_files(folder: Path) -> None:
    """Weights of an earlier export in ``folder``: a new merged model must not load next to stale shards."""
    for pattern in WEIGHT_FILES:
        for path in folder.glob(pattern):
            path.unlink()

"""Causal-LM training loss computed only where it counts.

- **Labelled positions only.** The output head (hidden -> vocabulary) and the cross-entropy are a large
  per-token cost (the larger the vocabulary and the smaller the model), and on SFT data many positions
  are prompt or padding (label -100). A forward pre-hook on the model's output-embedding module gives it only the
  hidden states whose next-token label is trained, so the model's own forward (and whatever it applies
  to logits, e.g. soft-capping) runs on ``[1, n_labelled, vocab]``. The loss is the same sum of token
  losses, normalised as the Trainer would (``num_items_in_batch`` or the mean).
- **Fused cross-entropy.** The gradient of a summed cross-entropy is ``softmax - one_hot``; it is
  computed in the forward pass, chunk by chunk (bounded float32 temporaries), instead of saving
  log-probabilities and running a separate backward kernel (less memory traffic).
- **No redundant padding mask.** With right padding and causal attention no real token can attend to a
  padding token, so the padding mask changes nothing that is trained; without it SDPA takes its
  causal fast path (no ``[batch, 1, len, len]`` mask, blocks above the diagonal skipped).
"""

from __future__ import annotations

from typing import Any

import torch

IGNORE_INDEX = -100
#: Rows of logits handled at once by the fused cross-entropy (bounds its float32 temporaries).
CHUNK_ELEMENTS = 1 << 24


class LabelledHead:
    """Context manager around one forward pass: a pre-hook on the output head gives it only the hidden
    states at ``mask`` (``[batch, seq]``, bool), as ``[1, n, hidden]``. :attr:`selected` tells whether the
    head was called that way (a model that calls its head differently gets its usual input)."""

    def __init__(self, head: torch.nn.Module, mask: torch.Tensor) -> None:
        self.head = head
        self.mask = mask
        self.selected = False
        self._handle: Any = None

    def __enter__(self) -> LabelledHead:
        self._handle = self.head.register_forward_pre_hook(self._select)
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.remove()

    def _select(self, module: torch.nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        if self.selected or not args or not isinstance(args[0], torch.Tensor):
            return None
        hidden = args[0]
        if hidden.dim() != 3 or tuple(hidden.shape[:2]) != tuple(self.mask.shape):
            return None
        self.selected = True
        return (hidden[self.mask].unsqueeze(0), *args[1:])


def next_token_targets(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mask of positions whose next token is trained, those next tokens), in row-major order."""
    mask = torch.zeros(labels.shape, dtype=torch.bool, device=labels.device)
    shifted = labels[..., 1:]
    mask[..., :-1] = shifted != IGNORE_INDEX
    return mask, shifted[mask[..., :-1]]


class _SumCrossEntropy(torch.autograd.Function):
    """Sum of token cross-entropies; the gradient (softmax - one_hot) is computed in the forward pass."""

    @staticmethod
    def forward(ctx: Any, logits: torch.Tensor, targets: torch.Tensor, chunk_rows: int) -> torch.Tensor:
        grad = torch.empty(logits.shape, dtype=torch.float32, device=logits.device)
        total = torch.zeros((), dtype=torch.float32, device=logits.device)
        for start in range(0, logits.shape[0], chunk_rows):
            rows = slice(start, start + chunk_rows)
            log_probs = torch.log_softmax(logits[rows].float(), dim=-1)
            chunk_targets = targets[rows].unsqueeze(1)
            total -= log_probs.gather(1, chunk_targets).sum()
            probs = log_probs.exp_()
            probs.scatter_add_(1, chunk_targets, torch.full_like(chunk_targets, -1, dtype=probs.dtype))
            grad[rows] = probs
        ctx.save_for_backward(grad)
        ctx.logits_dtype = logits.dtype
        ctx.done = False
        return total

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        if ctx.done:
            raise RuntimeError("fused cross-entropy: backward may run only once (its gradient is reused in place)")
        ctx.done = True
        (grad,) = ctx.saved_tensors
        return grad.mul_(grad_output).to(ctx.logits_dtype), None, None


def cross_entropy_sum(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``F.cross_entropy(logits, targets, reduction="sum")`` for ``[n, vocab]`` logits, computed fused."""
    if logits.shape[0] == 0:
        return logits.sum(dtype=torch.float32)  # keeps the graph; zero
    chunk_rows = max(1, CHUNK_ELEMENTS // max(1, logits.shape[-1]))
    loss: torch.Tensor = _SumCrossEntropy.apply(logits, targets, chunk_rows)
    return loss


def without_padding_mask(inputs: dict[str, Any]) -> dict[str, Any]:
    """``inputs`` without a padding mask that cannot change any trained output (right padding, causal
    attention); unchanged otherwise. With ``position_ids`` (packed rows) the mask becomes all ones
    instead, so transformers does not read the positions as separate sequences. Kept when padding is trained
    (``ignore_pad_token_for_loss: false`` labels padding with the pad id): outputs at padding positions count
    then, and they do depend on the mask."""
    mask = inputs.get("attention_mask")
    if not isinstance(mask, torch.Tensor) or mask.dim() != 2 or mask.shape[1] < 2:
        return inputs
    if bool((mask[:, 1:] > mask[:, :-1]).any()) or bool((mask[:, 0] == 0).any()):
        return inputs  # a zero before a one: left padding or holes, the mask matters
    labels = inputs.get("labels")
    if (
        isinstance(labels, torch.Tensor)
        and labels.shape == mask.shape
        and bool(((labels != IGNORE_INDEX) & (mask == 0)).any())
    ):
        return inputs
    if "position_ids" in inputs:
        return {**inputs, "attention_mask": torch.ones_like(mask)}
    return {key: value for key, value in inputs.items() if key != "attention_mask"}

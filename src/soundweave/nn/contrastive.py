"""Contrastive losses for two-tower (audio <-> text) models, with in-batch negatives.

Every loss takes `logits (B, B)`: row i is query i (e.g. text i) scored against every item (audio j),
already multiplied by the (learnable) temperature scale; the matching pairs are on the diagonal.

- `symmetric_infonce`: CLIP/MuLan softmax cross-entropy, averaged over both directions.
- `decoupled_contrastive`: DCL (Yeh et al. 2022): as InfoNCE but the positive is removed from each
  denominator, so the loss is not damped by the positive's own weight at small batch sizes.
- `sigmoid_contrastive`: SigLIP (Zhai et al. 2023): an independent binary problem per pair,
  `-log sigmoid(+/- logit)`, with a learnable bias; no softmax over the batch.

`ContrastiveLoss` owns the learnable temperature (and the SigLIP bias) and turns two sets of
l2-normalised latents into a loss.

Several processes (`accelerate launch`): `ContrastiveLoss` gathers both sets of latents from every
process with gradients (`nn.distributed.gather_with_grad`) whenever gradients are enabled and a process
group of 2 or more is running, so the negatives are the global batch (as in MuLan and CLIP training) and,
after DDP's gradient averaging, loss and gradients equal those of one process with the whole global batch.
`gather_distributed=False` turns this off (each process then contrasts its own slice only).

Gradient accumulation: every loss here sees the negatives *in the tensors it is given* (after the gather).
Under the Trainer's `grad_accum`, each micro-batch (of `batch_size` items, over all processes) is its own
contrastive problem, and the accumulated gradient is the mean of the micro-batch gradients.
For negatives across a whole large batch under a memory limit, use the GradCache-style step in
`soundweave.training.mulan.grad_cache_backward`, whose gradient equals the full-batch gradient.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, ShapeError
from .distributed import gather_with_grad, world_size

LOSSES = ("infonce", "decoupled", "sigmoid")


def _check_logits(logits: torch.Tensor) -> torch.Tensor:
    if logits.ndim != 2 or logits.shape[0] != logits.shape[1]:
        raise ShapeError(
            f"contrastive logits must be square (B, B) with pairs on the diagonal, "
            f"got shape {tuple(logits.shape)}"
        )
    if logits.shape[0] < 1:
        raise ShapeError("contrastive logits are empty (batch of 0)")
    return logits.float()


def symmetric_infonce(logits: torch.Tensor) -> torch.Tensor:
    """Mean of the row-wise and column-wise softmax cross-entropy with the diagonal as targets."""
    logits = _check_logits(logits)
    target = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


def decoupled_contrastive(logits: torch.Tensor) -> torch.Tensor:
    """Decoupled contrastive loss: `-l_ii + logsumexp_{j != i} l_ij`, averaged over both directions.

    With a batch of 1 there are no negatives; the loss is then `-l_ii` (it only pulls the pair together).
    """
    logits = _check_logits(logits)
    b = logits.shape[0]
    pos = logits.diagonal()
    if b == 1:
        return -pos.mean()
    eye = torch.eye(b, dtype=torch.bool, device=logits.device)
    neg = logits.masked_fill(eye, float("-inf"))
    rows = torch.logsumexp(neg, dim=1) - pos
    cols = torch.logsumexp(neg, dim=0) - pos
    return 0.5 * (rows.mean() + cols.mean())


def sigmoid_contrastive(logits: torch.Tensor) -> torch.Tensor:
    """SigLIP loss: `-sum_ij log sigmoid(z_ij * logit_ij) / B`, z = +1 on the diagonal, -1 elsewhere.

    `logits` must already include the bias (`scale * sim + bias`).
    """
    logits = _check_logits(logits)
    b = logits.shape[0]
    signs = 2 * torch.eye(b, device=logits.device) - 1
    return -F.logsigmoid(signs * logits).sum() / b


def contrastive(logits: torch.Tensor, kind: str = "infonce") -> torch.Tensor:
    if kind == "infonce":
        return symmetric_infonce(logits)
    if kind == "decoupled":
        return decoupled_contrastive(logits)
    if kind == "sigmoid":
        return sigmoid_contrastive(logits)
    raise ConfigError(f"contrastive loss must be one of {LOSSES}, got {kind!r}")


class ContrastiveLoss(nn.Module):
    """Learnable temperature (and SigLIP bias) + one of the losses above.

    forward(query (B, D), items (B, D)) -> loss; both l2-normalised; pairs share the row index.
    `logits(query, items)` gives the scaled similarity `(B, B)` (plus the bias for 'sigmoid').

    The scale is stored as a log (init log(temperature_init), clamped at `max_scale`): 10 for softmax
    losses (MuLan, CLIP), 10 with bias -10 for sigmoid (SigLIP).
    """

    def __init__(
        self,
        kind: str = "infonce",
        temperature_init: float = 10.0,
        bias_init: float = -10.0,
        max_scale: float = 100.0,
        learnable: bool = True,
        gather_distributed: bool = True,
    ):
        super().__init__()
        if kind not in LOSSES:
            raise ConfigError(f"contrastive loss must be one of {LOSSES}, got {kind!r}")
        if temperature_init <= 0 or max_scale <= 0:
            raise ConfigError("temperature_init and max_scale must be positive")
        self.kind, self.max_scale = kind, max_scale
        self.gather_distributed = gather_distributed  # global-batch negatives across processes (see above)
        self.log_scale = nn.Parameter(torch.tensor(math.log(temperature_init)), requires_grad=learnable)
        self.bias = nn.Parameter(
            torch.tensor(float(bias_init)), requires_grad=learnable and kind == "sigmoid"
        )

    @property
    def scale(self) -> torch.Tensor:
        return self.log_scale.clamp(max=math.log(self.max_scale)).exp()

    def logits(self, query: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        if query.ndim != 2 or items.ndim != 2 or query.shape[-1] != items.shape[-1]:
            raise ShapeError(
                f"latents must be (B, D) with the same D, got {tuple(query.shape)} and {tuple(items.shape)}"
            )
        sim = query.float() @ items.float().t()
        logits = sim * self.scale
        if self.kind == "sigmoid":
            logits = logits + self.bias
        return logits

    def forward(self, query: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        if query.shape[0] != items.shape[0]:
            raise ShapeError(
                f"paired latents need the same batch size, got {query.shape[0]} and {items.shape[0]}"
            )
        if self.gather_distributed and torch.is_grad_enabled() and world_size() > 1:
            query, items = gather_with_grad(query), gather_with_grad(items)
        return contrastive(self.logits(query, items), self.kind)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, max_scale={self.max_scale}"

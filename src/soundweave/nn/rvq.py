"""A residual vector quantizer with factorised, l2-normalised codes (as in DAC), on the library's levels.

    rvq = FactorizedResidualVQ(dim=128, num_quantizers=8, codebook_size=1024, codebook_dim=8)
    quantized, codes, commit = rvq(latents)          # training: (B, N, D) -> (B, N, D), (B, N, Q), loss
    quantized, codes = rvq.quantize(latents, q=4)    # deterministic nearest codes of the first 4 levels
    latents = rvq.decode(codes)                      # (B, N, Q') -> (B, N, D)

Each level is a `vector_quantize_pytorch.VectorQuantize` that projects the residual (D dims) to a small
space (codebook_dim), compares it there with l2-normalised codes (cosine similarity), and projects the
chosen code back: low-dimensional, normalised lookups keep most codes in use, where full-dimensional
Euclidean codebooks collapse to a few (Kumar et al. 2023, "High-Fidelity Audio Compression with Improved
RVQGAN", arXiv 2306.06546). The library does what trains the codebooks - k-means init on the first batch,
EMA updates, dead-code replacement, straight-through gradients, the commitment loss. Quantizer dropout
(SoundStream) trains a random number of levels on half of the batches, so one model serves every bitrate.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from vector_quantize_pytorch import VectorQuantize

from ..errors import ConfigError


class FactorizedResidualVQ(nn.Module):
    def __init__(self, dim: int, num_quantizers: int, codebook_size: int, codebook_dim: int = 8, *,
                 decay: float = 0.99, commitment_weight: float = 0.25, kmeans_init: bool = True,
                 kmeans_iters: int = 10, threshold_ema_dead_code: float = 2.0, quantize_dropout: bool = True):
        super().__init__()
        self.num_quantizers, self.codebook_size, self.quantize_dropout = num_quantizers, codebook_size, quantize_dropout
        self.levels = nn.ModuleList(
            VectorQuantize(dim=dim, codebook_size=codebook_size, codebook_dim=codebook_dim, use_cosine_sim=True,
                           decay=decay, commitment_weight=commitment_weight, kmeans_init=kmeans_init,
                           kmeans_iters=kmeans_iters, threshold_ema_dead_code=threshold_ema_dead_code)
            for _ in range(num_quantizers))
        if kmeans_init:
            # k-means init leaves zero codebooks until the first training batch; an untrained model gets
            # distinct random unit codes, so its codes mean something before training
            with torch.no_grad():
                for vq in self.levels:
                    vq._codebook.embed.copy_(F.normalize(torch.randn_like(vq._codebook.embed), dim=-1))

    def codebook(self, level: int) -> torch.Tensor:
        """The l2-normalised codes of one level, (codebook_size, codebook_dim)."""
        return F.normalize(self.levels[level]._codebook.embed[0], dim=-1)

    def _levels(self, q: int | None) -> int:
        q = self.num_quantizers if q is None else int(q)
        if not 1 <= q <= self.num_quantizers:
            raise ConfigError(f"num_quantizers must be in [1, {self.num_quantizers}], got {q}")
        return q

    def quantize(self, latents: torch.Tensor, q: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Deterministic: (B, N, D) -> (sum of the chosen codes (B, N, D), codes (B, N, q) int64).

        Level by level, the nearest code (cosine) of the residual in that level's projection, in fp32 (codes
        do not depend on autocast); the codebooks never change here.
        """
        q = self._levels(q)
        with torch.autocast(device_type=latents.device.type, enabled=False):
            residual = latents.float()
            total = torch.zeros_like(residual)
            codes = []
            for level in range(q):
                vq, book = self.levels[level], self.codebook(level).float()
                idx = (F.normalize(vq.project_in(residual), dim=-1) @ book.t()).argmax(dim=-1)
                chosen = vq.project_out(book[idx])
                residual = residual - chosen
                total = total + chosen
                codes.append(idx)
        return total.to(latents.dtype), torch.stack(codes, dim=-1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, N, Q') int64 with Q' <= Q -> (B, N, D): the sum of the first Q' levels' codes."""
        total = 0
        for level in range(codes.shape[-1]):
            total = total + self.levels[level].project_out(F.embedding(codes[..., level], self.codebook(level)))
        return total

    def forward(self, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training: (B, N, D) -> (quantized (B, N, D), codes (B, N, Q) with -1 at dropped levels, commitment loss).

        The library levels run on the residual (k-means init, EMA, dead codes, straight-through gradients).
        With quantizer dropout, half of the batches keep only a random 1..Q levels.
        """
        q = self.num_quantizers
        if self.quantize_dropout and q > 1 and torch.rand(()) < 0.5:
            q = int(torch.randint(1, self.num_quantizers + 1, ()))
        residual, total, commit = latents, torch.zeros_like(latents), latents.new_zeros(())
        codes = torch.full((*latents.shape[:-1], self.num_quantizers), -1, dtype=torch.long, device=latents.device)
        with quiet_kmeans_init(self.levels):
            for level in range(q):
                quantized, idx, loss = self.levels[level](residual)
                residual = residual - quantized.detach()
                total = total + quantized
                commit = commit + loss.sum()
                codes[..., level] = idx
        return total, codes, commit


def quiet_kmeans_init(vq_layers):
    """A context that mutes vector-quantize-pytorch's "k-means init received fewer vectors than codes"
    warning while any of `vq_layers` still waits for its k-means init: with small batches (and quantizer
    dropout initialising deeper levels later) it is expected, and dead-code replacement re-seeds
    duplicated codes from later batches."""
    import contextlib

    pending = any(not bool(layer._codebook.initted) for layer in vq_layers)
    try:
        from loguru import logger
    except ImportError:  # pragma: no cover - a dependency of vector-quantize-pytorch
        logger = None
    if not pending or logger is None:
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def muted():
        logger.disable("vector_quantize_pytorch")
        try:
            yield
        finally:
            logger.enable("vector_quantize_pytorch")

    return muted()


__all__ = ["FactorizedResidualVQ", "quiet_kmeans_init"]

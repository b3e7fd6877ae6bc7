"""ConformerWrapper: SoundStorm's network - codes (B, N, Q) in, one level's logits out.

    net = ConformerWrapper(codebook_size=1024, num_quantizers=12, conformer=dict(dim=512, depth=2))
    logits = net(codes, level=0)                       # (B, N, 1024); masked positions hold net.mask_id

Per frame, the embeddings of the Q tokens (each level its own table with its own mask token, or - with
`mask_embedding="zero"` - masked tokens adding nothing) are summed,
plus the time-aligned semantic token's embedding; a Conformer runs over the N frames (not N x Q); Q output
heads, of which only the needed one is computed. `SoundStorm` (models/soundstorm.py) trains and samples it.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, ShapeError
from ..nn.conformer import Conformer
from .base import PretrainedModel


def _is_int_tensor(x: Any) -> bool:
    return isinstance(x, torch.Tensor) and not x.is_floating_point() and not x.is_complex() and x.dtype != torch.bool


@dataclass
class ConformerWrapperConfig:
    codebook_size: int
    num_quantizers: int
    conformer: dict = field(default_factory=dict)
    num_semantic_token_ids: int | None = None
    semantic_pad_id: int = -1
    semantic_ratio: float | None = None  # acoustic frames per semantic token (2.0 for 25 Hz -> 50 Hz); None = any
    cond_dim: int | None = None
    cond_mode: str = "adaln"
    # "learned": each level has a trained mask embedding (soundstorm-pytorch's way); "zero": a masked token adds
    # nothing to its frame and has no embedding to train (measured to learn level 0 faster; see the README)
    mask_embedding: str = "learned"
    # True: each level's output head is that level's input embedding table (as language models tie theirs), so
    # "this frame holds the code its neighbour holds" is learned at once (measured: README, SoundStorm recipe)
    tie_embeddings: bool = False

    def __post_init__(self):
        if self.conformer is not None and not isinstance(self.conformer, dict):
            raise ConfigError("conformer must be a dict of Conformer keyword arguments, e.g. dict(dim=512, depth=2), "
                              f"got {type(self.conformer).__name__}")
        self.conformer = dict(self.conformer or {})
        self.conformer.pop("attn_flash", None)  # soundstorm-pytorch's switch; attention always goes through SDPA
        accepted = set(inspect.signature(Conformer).parameters)
        unknown = set(self.conformer) - accepted
        if unknown:
            raise ConfigError(f"unknown Conformer option(s) {sorted(unknown)}; accepted: "
                              f"{sorted(accepted - {'cond_dim', 'cond_mode'})}")
        for name in ("codebook_size", "num_quantizers"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"ConformerWrapper {name} must be a positive integer, got {value!r}")
        if "dim" not in self.conformer or "depth" not in self.conformer:
            raise ConfigError(f"conformer=dict(...) needs at least dim and depth, got {self.conformer}")
        for key in ("cond_dim", "cond_mode"):
            if key in self.conformer:
                raise ConfigError(f"pass {key} to ConformerWrapper, not inside conformer=dict(...)")
        k = self.num_semantic_token_ids
        if k is not None and (not isinstance(k, int) or k < 1):
            raise ConfigError(f"num_semantic_token_ids must be a positive integer or None, got {k!r}")
        if self.semantic_ratio is not None and not self.semantic_ratio > 0:
            raise ConfigError(f"semantic_ratio must be > 0 or None, got {self.semantic_ratio!r}")
        if k is not None and 0 <= self.semantic_pad_id < k:
            raise ConfigError(f"semantic_pad_id {self.semantic_pad_id} collides with a real semantic id "
                              f"(0..{k - 1}); use -1 or a value >= num_semantic_token_ids")
        if self.cond_dim is not None and (not isinstance(self.cond_dim, int) or self.cond_dim < 1):
            raise ConfigError(f"cond_dim must be a positive integer or None, got {self.cond_dim!r}")
        if self.mask_embedding not in ("zero", "learned"):
            raise ConfigError(f"mask_embedding must be 'zero' or 'learned', got {self.mask_embedding!r}")
        if not isinstance(self.tie_embeddings, bool):
            raise ConfigError(f"tie_embeddings must be True or False, got {self.tie_embeddings!r}")


class ConformerWrapper(PretrainedModel):
    """Codes `(B, N, Q)` (value `codebook_size` = masked) -> logits for one level `(B, N, C)` or all `(B, N, Q, C)`.

    Args:
        codebook_size: C, tokens per level.
        num_quantizers: Q, residual levels.
        conformer: keyword arguments of `soundweave.Conformer` (at least `dim` and `depth`).
        num_semantic_token_ids: K to condition on semantic tokens `(B, S)`, summed per frame after
            upsampling to the N frames (repetition for integer ratios, linear interpolation otherwise).
        semantic_pad_id: the semantic id that means "no token" (contributes nothing).
        semantic_ratio: acoustic frames per semantic token; when set, S must fit N (|S * ratio - N| < ratio).
        cond_dim / cond_mode: global conditioning tokens `(B, L, cond_dim)` (e.g. MuLaN tokens) through
            adaptive LayerNorm ("adaln") or cross-attention ("cross").
        mask_embedding: "learned" (a trained mask token per level) or "zero" (a masked token adds nothing).
        tie_embeddings: each level's output head is its input embedding table (plus a per-code bias).
    """

    def __init__(self, codebook_size: int, num_quantizers: int, conformer: dict | None = None,
                 num_semantic_token_ids: int | None = None, semantic_pad_id: int = -1,
                 semantic_ratio: float | None = None, cond_dim: int | None = None, cond_mode: str = "adaln",
                 mask_embedding: str = "learned", tie_embeddings: bool = False):
        super().__init__()
        self.config = c = ConformerWrapperConfig(codebook_size, num_quantizers, conformer, num_semantic_token_ids,
                                                 semantic_pad_id, semantic_ratio, cond_dim, cond_mode, mask_embedding,
                                                 tie_embeddings)
        self.conformer = Conformer(**c.conformer, cond_dim=cond_dim, cond_mode=cond_mode)
        dim = self.conformer.dim
        self.dim = dim
        # one table of Q * (C + 1) rows: level q's token c is row q * (C + 1) + c; c = C is level q's mask token
        self.code_embeds = nn.Parameter(torch.randn(num_quantizers * (codebook_size + 1), dim) * 0.02)
        self.register_buffer("level_offsets", torch.arange(num_quantizers) * (codebook_size + 1), persistent=False)
        self.semantic_embeds = nn.Embedding(num_semantic_token_ids, dim) if num_semantic_token_ids else None
        if self.semantic_embeds is not None:
            nn.init.normal_(self.semantic_embeds.weight, std=0.02)
        self.norm = nn.LayerNorm(dim)
        bound = 1 / math.sqrt(dim)
        self.head_weight = None if tie_embeddings else nn.Parameter(
            torch.empty(num_quantizers, codebook_size, dim).uniform_(-bound, bound))
        self.head_bias = nn.Parameter(torch.zeros(num_quantizers, codebook_size))

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ConformerWrapper:
        return cls(**config)

    # -- properties ------------------------------------------------------------------------------------------
    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    @property
    def num_quantizers(self) -> int:
        return self.config.num_quantizers

    @property
    def mask_id(self) -> int:
        """The code value that means "masked" (every level has its own embedding for it)."""
        return self.config.codebook_size

    # -- inputs ----------------------------------------------------------------------------------------------
    def check_codes(self, codes: torch.Tensor, allow_mask: bool = True, name: str = "codes") -> torch.Tensor:
        Q, C = self.num_quantizers, self.codebook_size
        if not isinstance(codes, torch.Tensor):
            raise ShapeError(f"{name} must be a torch tensor of integer codes (B, N, {Q}), got {type(codes).__name__}")
        if not _is_int_tensor(codes):
            raise ShapeError(f"{name} must hold integer codes (int64), got dtype {codes.dtype}")
        if codes.ndim != 3 or codes.shape[-1] != Q or codes.shape[1] == 0 or codes.shape[0] == 0:
            raise ShapeError(f"{name} must be (B, N, Q={Q}) with N >= 1, got {tuple(codes.shape)}")
        high = C if allow_mask else C - 1
        lo, hi = int(codes.min()), int(codes.max())
        if lo < 0 or hi > high:
            raise ShapeError(f"{name} must lie in [0, {C - 1}] (codebook_size {C}), got values in [{lo}, {hi}]")
        return codes.long()

    def check_mask(self, mask: torch.Tensor | None, batch: int, frames: int) -> torch.Tensor | None:
        if mask is None:
            return None
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or tuple(mask.shape) != (batch, frames):
            got = f"{mask.dtype} {tuple(mask.shape)}" if isinstance(mask, torch.Tensor) else type(mask).__name__
            raise ShapeError(f"mask must be a bool tensor (B={batch}, N={frames}) with True = real frame, got {got}")
        return mask

    def check_codec(self, codec: Any) -> None:
        """A ConfigError unless `codec` makes the codes this network takes (its Q levels x C codes)."""
        q, c = getattr(codec, "num_quantizers", None), getattr(codec, "codebook_size", None)
        if q != self.num_quantizers or c != self.codebook_size:
            raise ConfigError(f"codec has {q} quantizers x codebook {c}, but the ConformerWrapper expects "
                              f"{self.num_quantizers} x {self.codebook_size}; build them to match")

    def semantic_frames(self, num_semantic: int) -> int:
        """Acoustic frames that `num_semantic` semantic tokens cover (by `semantic_ratio`, else 1:1)."""
        ratio = self.config.semantic_ratio or 1.0
        return max(1, int(round(num_semantic * ratio)))

    def embed_semantic(self, ids: torch.Tensor, num_frames: int) -> torch.Tensor:
        """Semantic ids `(B, S)` -> per-frame embeddings `(B, N, D)` (pad ids contribute zeros)."""
        cfg = self.config
        if self.semantic_embeds is None:
            raise ConfigError("this ConformerWrapper takes no semantic tokens: build it with num_semantic_token_ids=K")
        if not _is_int_tensor(ids) or ids.ndim != 2 or ids.shape[1] == 0:
            got = f"{ids.dtype} {tuple(ids.shape)}" if isinstance(ids, torch.Tensor) else type(ids).__name__
            raise ShapeError(f"cond_semantic_token_ids must be integer (B, S) with S >= 1, got {got}")
        ids = ids.long()
        valid = ids.ne(cfg.semantic_pad_id)
        if valid.any():
            real = ids[valid]
            lo, hi = int(real.min()), int(real.max())
            if lo < 0 or hi >= cfg.num_semantic_token_ids:
                raise ShapeError(f"semantic ids must lie in [0, {cfg.num_semantic_token_ids - 1}] (or be the pad id "
                                 f"{cfg.semantic_pad_id}), got values in [{lo}, {hi}]")
        S, N = ids.shape[1], num_frames
        ratio = cfg.semantic_ratio
        if ratio is not None and abs(S * ratio - N) >= ratio:
            raise ShapeError(f"semantic length mismatch: {S} semantic tokens x semantic_ratio {ratio} = "
                             f"{S * ratio:g} frames, but the codes have {N} frames")
        if ratio is None and S > N:
            raise ShapeError(f"semantic length mismatch: {S} semantic tokens for only {N} acoustic frames "
                             "(set semantic_ratio on the ConformerWrapper if that is intended)")
        emb = self.semantic_embeds(ids.masked_fill(~valid, 0)) * valid[..., None].to(self.semantic_embeds.weight.dtype)
        if ratio is not None and float(ratio).is_integer():
            emb = emb.repeat_interleave(int(ratio), dim=1)
            if emb.shape[1] < N:
                emb = torch.cat([emb, emb[:, -1:].expand(-1, N - emb.shape[1], -1)], dim=1)
            return emb[:, :N]
        if N % S == 0:
            return emb.repeat_interleave(N // S, dim=1)
        return F.interpolate(emb.transpose(1, 2), size=N, mode="linear", align_corners=False).transpose(1, 2)

    # -- the network ---------------------------------------------------------------------------------------
    def embed_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Sum of the Q level embeddings per frame: `(B, N, Q)` -> `(B, N, D)`."""
        B, N, Q = codes.shape
        flat = (codes + self.level_offsets).reshape(B * N, Q)
        weights = None
        if self.config.mask_embedding == "zero":  # masked tokens add nothing (and their rows get no gradient)
            weights = codes.ne(self.mask_id).reshape(B * N, Q).to(self.code_embeds.dtype)
        return F.embedding_bag(flat, self.code_embeds, mode="sum", per_sample_weights=weights).reshape(B, N, -1)

    def output_weights(self) -> torch.Tensor:
        """The Q output heads `(Q, C, D)`: their own weights, or (tied) the levels' code embeddings."""
        if self.head_weight is not None:
            return self.head_weight
        Q, C = self.num_quantizers, self.codebook_size
        return self.code_embeds.view(Q, C + 1, -1)[:, :C]

    def logits(self, hidden: torch.Tensor, level: int | torch.Tensor | None = None) -> torch.Tensor:
        """hidden `(B, N, D)` -> logits of one level `(B, N, C)` (level int, or `(B,)` one per item) or all
        levels `(B, N, Q, C)` (level None)."""
        heads = self.output_weights()
        if level is None:
            return torch.einsum("bnd,qcd->bnqc", hidden, heads) + self.head_bias
        if isinstance(level, int):
            if not 0 <= level < self.num_quantizers:
                raise ShapeError(f"level must be in [0, {self.num_quantizers}), got {level}")
            return F.linear(hidden, heads[level], self.head_bias[level])
        weight, bias = heads[level], self.head_bias[level]  # (B, C, D), (B, C)
        return torch.baddbmm(bias[:, None, :].to(hidden.dtype), hidden, weight.transpose(1, 2).to(hidden.dtype))

    def forward(self, codes: torch.Tensor, mask: torch.Tensor | None = None,
                semantic_ids: torch.Tensor | None = None, cond: torch.Tensor | None = None,
                cond_mask: torch.Tensor | None = None, level: int | torch.Tensor | None = None, *,
                semantic_embeds: torch.Tensor | None = None, positions: torch.Tensor | None = None,
                check: bool = True) -> torch.Tensor:
        """codes `(B, N, Q)` (mask id allowed), mask `(B, N)`, semantic_ids `(B, S)` (or precomputed
        `semantic_embeds` `(B, N, D)`), cond `(B, L, cond_dim)`, level -> logits (see `logits`).

        `positions` `(B, N)` bool (with an int `level`): logits only where it is True, `(M, C)` in row-major
        order - the final norm and the output head then run on those frames only."""
        if check:
            codes = self.check_codes(codes)
            mask = self.check_mask(mask, codes.shape[0], codes.shape[1])
        B, N, _ = codes.shape
        x = self.embed_codes(codes)
        if semantic_embeds is None and semantic_ids is not None:
            if semantic_ids.shape[0] != B:
                raise ShapeError(f"cond_semantic_token_ids has batch {semantic_ids.shape[0]}, codes have {B}")
            semantic_embeds = self.embed_semantic(semantic_ids, N)
        if semantic_embeds is not None:
            x = x + semantic_embeds
        hidden = self.conformer(x, mask=mask, cond=cond, cond_mask=cond_mask)
        if positions is not None:
            if not isinstance(level, int) or positions.shape != (B, N) or positions.dtype != torch.bool:
                raise ShapeError(f"positions must be bool (B, N) = {(B, N)} and needs an int level, got "
                                 f"{positions.dtype} {tuple(positions.shape)} with level {level!r}")
            hidden = hidden[positions]
        return self.logits(self.norm(hidden), level)


__all__ = ["ConformerWrapper", "ConformerWrapperConfig"]

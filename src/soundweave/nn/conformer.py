"""The Conformer (Gulati et al. 2020, arXiv 2005.08100) as SoundStorm uses it (arXiv 2305.09636).

A block is: half feed-forward -> self-attention (SDPA, rotary positions) -> [cross-attention] ->
convolution module -> half feed-forward -> LayerNorm ("macaron" feed-forward halves, residual each).
The convolution module is pointwise -> GLU -> depthwise -> LayerNorm -> Swish -> pointwise; LayerNorm
stands where the original had BatchNorm, so a sample never depends on the others in its batch.

Padding (`mask` `(B, N)` bool, True = a real frame) is respected everywhere time is mixed: attention
keys, and the depthwise convolution, whose input is zeroed at padded frames. A padded item's real frames
therefore get exactly the output the unpadded item would get.

Optional global conditioning `cond` (e.g. MuLaN tokens) enters through adaptive LayerNorm
(`cond_mode="adaln"`: the tokens are mean-pooled and every pre-norm is scaled/shifted by a zero-initialised
projection of them) or through a cross-attention sublayer (`cond_mode="cross"`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, ShapeError
from .attention import Attention, FeedForward, RotaryEmbedding
from .conv import depthwise_conv_time_last

COND_MODES = ("adaln", "cross")


class AdaptiveLayerNorm(nn.Module):
    """LayerNorm whose output is modulated by a conditioning vector: `norm(x) * (1 + g(c)) + b(c)`.

    With `cond_dim=None` it is a plain LayerNorm. The projection starts at zero, so an untrained
    conditioned model behaves like the unconditioned one.
    """

    def __init__(self, dim: int, cond_dim: int | None = None):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.to_scale_shift = None
        if cond_dim:
            self.to_scale_shift = nn.Linear(cond_dim, dim * 2)
            nn.init.zeros_(self.to_scale_shift.weight)
            nn.init.zeros_(self.to_scale_shift.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        x = self.norm(x)
        if self.to_scale_shift is None or cond is None:
            return x
        scale, shift = self.to_scale_shift(cond).unsqueeze(1).chunk(2, dim=-1)  # (B, 1, D) each
        return x * (1 + scale) + shift


class ConformerConvModule(nn.Module):
    """pointwise (D -> 2E) -> GLU (E) -> depthwise conv (kernel k) -> LayerNorm -> Swish -> pointwise (E -> D).

    `E = dim * expansion_factor` (1 = the original Conformer). Padded frames are zeroed before the
    depthwise convolution, so they never reach real frames. `causal=True` pads on the left only.
    """

    def __init__(self, dim: int, kernel_size: int = 5, expansion_factor: int = 1, dropout: float = 0.0,
                 causal: bool = False):
        super().__init__()
        inner = dim * expansion_factor
        self.kernel_size, self.causal = kernel_size, causal
        self.pointwise_in = nn.Linear(dim, inner * 2)
        self.depthwise = nn.Conv1d(inner, inner, kernel_size, groups=inner)
        self.norm = nn.LayerNorm(inner)
        self.act = nn.SiLU()
        self.pointwise_out = nn.Linear(inner, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x `(B, N, D)` (already normalised), mask `(B, N)` -> `(B, N, D)`."""
        h = F.glu(self.pointwise_in(x), dim=-1)  # (B, N, E)
        if mask is not None:
            h = h.masked_fill(~mask[..., None], 0.0)
        k = self.kernel_size
        pad = (k - 1, 0) if self.causal else ((k - 1) // 2, k // 2)
        h = depthwise_conv_time_last(h, self.depthwise.weight, self.depthwise.bias, pad)
        h = self.act(self.norm(h))
        return self.dropout(self.pointwise_out(h))


class ConformerBlock(nn.Module):
    """One Conformer block (see the module docstring). forward(x, mask, rotary, cond, cond_tokens, cond_mask)."""

    def __init__(self, dim: int, heads: int = 8, dim_head: int = 64, ff_mult: float = 4.0,
                 conv_kernel_size: int = 5, conv_expansion_factor: int = 1, attn_dropout: float = 0.0,
                 ff_dropout: float = 0.0, conv_dropout: float = 0.0, conv_causal: bool = False,
                 cond_dim: int | None = None, cond_mode: str = "adaln"):
        super().__init__()
        adaln_dim = cond_dim if cond_dim and cond_mode == "adaln" else None
        self.ff1_norm = AdaptiveLayerNorm(dim, adaln_dim)
        self.ff1 = FeedForward(dim, ff_mult, ff_dropout, activation="swish")
        self.attn_norm = AdaptiveLayerNorm(dim, adaln_dim)
        self.attn = Attention(dim, heads, dim_head, attn_dropout)
        self.cross_norm = self.cross = None
        if cond_dim and cond_mode == "cross":
            self.cross_norm = nn.LayerNorm(dim)
            self.cross = Attention(dim, heads, dim_head, attn_dropout, context_dim=cond_dim)
        self.conv_norm = AdaptiveLayerNorm(dim, adaln_dim)
        self.conv = ConformerConvModule(dim, conv_kernel_size, conv_expansion_factor, conv_dropout, conv_causal)
        self.ff2_norm = AdaptiveLayerNorm(dim, adaln_dim)
        self.ff2 = FeedForward(dim, ff_mult, ff_dropout, activation="swish")
        self.post_norm = AdaptiveLayerNorm(dim, adaln_dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                rotary: tuple[torch.Tensor, torch.Tensor] | None = None, cond: torch.Tensor | None = None,
                cond_tokens: torch.Tensor | None = None, cond_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x `(B, N, D)`; cond `(B, Dc)` pooled (adaptive norm); cond_tokens `(B, L, Dc)` (cross-attention)."""
        x = torch.add(x, self.ff1(self.ff1_norm(x, cond)), alpha=0.5)  # a new tensor: the caller's x is untouched
        # without autograd the residual sums can update x in place (with it, LayerNorm keeps x for backward)
        add = torch.Tensor.add_ if not torch.is_grad_enabled() else torch.add
        x = add(x, self.attn(self.attn_norm(x, cond), mask=mask, rotary=rotary))
        if self.cross is not None and cond_tokens is not None:
            x = add(x, self.cross(self.cross_norm(x), context=cond_tokens, context_mask=cond_mask))
        x = add(x, self.conv(self.conv_norm(x, cond), mask=mask))
        x = add(x, self.ff2(self.ff2_norm(x, cond)), alpha=0.5)
        return self.post_norm(x, cond)


class Conformer(nn.Module):
    """A stack of `ConformerBlock`s sharing one rotary position table.

        conformer = Conformer(dim=512, depth=2)            # heads 8 x 64, FF x4, conv kernel 5
        y = conformer(x, mask=mask)                        # x (B, N, 512), mask (B, N) -> (B, N, 512)

    Global conditioning: build with `cond_dim=Dc` (and `cond_mode="adaln"` or `"cross"`), then pass
    `cond` `(B, Dc)` or `(B, L, Dc)` with an optional `cond_mask` `(B, L)`.
    """

    def __init__(self, dim: int, depth: int, heads: int = 8, dim_head: int = 64, ff_mult: float = 4.0,
                 conv_kernel_size: int = 5, conv_expansion_factor: int = 1, attn_dropout: float = 0.0,
                 ff_dropout: float = 0.0, conv_dropout: float = 0.0, conv_causal: bool = False,
                 rotary_dim: int | None = None, cond_dim: int | None = None, cond_mode: str = "adaln"):
        super().__init__()
        for name, value in (("dim", dim), ("depth", depth), ("heads", heads), ("dim_head", dim_head),
                            ("conv_kernel_size", conv_kernel_size), ("conv_expansion_factor", conv_expansion_factor)):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"Conformer {name} must be a positive integer, got {value!r}")
        if cond_mode not in COND_MODES:
            raise ConfigError(f"cond_mode must be one of {COND_MODES}, got {cond_mode!r}")
        rotary_dim = dim_head if rotary_dim is None else rotary_dim
        if rotary_dim % 2 or not 0 < rotary_dim <= dim_head:
            raise ConfigError(f"rotary_dim must be even and in (0, dim_head={dim_head}], got {rotary_dim}")
        self.dim, self.cond_dim, self.cond_mode = dim, cond_dim, cond_mode
        self.rotary = RotaryEmbedding(rotary_dim)
        self._rotary_cache: tuple[int, torch.device, tuple[torch.Tensor, torch.Tensor]] | None = None
        self.layers = nn.ModuleList(
            ConformerBlock(dim, heads, dim_head, ff_mult, conv_kernel_size, conv_expansion_factor, attn_dropout,
                           ff_dropout, conv_dropout, conv_causal, cond_dim, cond_mode)
            for _ in range(depth))

    def prepare_cond(self, cond: torch.Tensor | None, cond_mask: torch.Tensor | None, batch: int):
        """Check `cond` and turn it into what the blocks take: (pooled (B, Dc) | None, tokens | None, mask)."""
        if cond is None:
            if cond_mask is not None:
                raise ShapeError("cond_mask was given without cond")
            return None, None, None
        if self.cond_dim is None:
            raise ConfigError("this Conformer was built without cond_dim, so it takes no global conditioning")
        if cond.ndim == 2:
            cond = cond[:, None]
        if cond.ndim != 3 or cond.shape[0] != batch or cond.shape[-1] != self.cond_dim:
            raise ShapeError(f"cond must be (B={batch}, L, {self.cond_dim}) or (B, {self.cond_dim}), "
                             f"got {tuple(cond.shape)}")
        if not cond.is_floating_point():
            raise ShapeError(f"cond must be a float tensor, got {cond.dtype}")
        if cond_mask is not None:
            if cond_mask.shape != cond.shape[:2] or cond_mask.dtype != torch.bool:
                raise ShapeError(f"cond_mask must be bool {tuple(cond.shape[:2])}, got {cond_mask.dtype} "
                                 f"{tuple(cond_mask.shape)}")
        if self.cond_mode == "cross":
            return None, cond, cond_mask
        if cond_mask is None:
            return cond.mean(dim=1), None, None
        weights = cond_mask.to(cond.dtype)[..., None]
        return (cond * weights).sum(1) / weights.sum(1).clamp(min=1.0), None, None

    def rotary_table(self, length: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, sin `(length, rotary_dim)`, kept for the last length (generation calls with one length many times)."""
        cached = self._rotary_cache
        if cached is None or cached[0] != length or cached[1] != device:
            table = self.rotary(torch.arange(length, device=device))
            self._rotary_cache = cached = (length, device, table)
        return cached[2]

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, cond: torch.Tensor | None = None,
                cond_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x `(B, N, D)`, mask `(B, N)` bool (True = real frame) -> `(B, N, D)`."""
        if x.ndim != 3 or x.shape[-1] != self.dim:
            raise ShapeError(f"Conformer input must be (B, N, {self.dim}), got {tuple(x.shape)}")
        if mask is not None and (mask.shape != x.shape[:2] or mask.dtype != torch.bool):
            raise ShapeError(f"mask must be bool {tuple(x.shape[:2])}, got {mask.dtype} {tuple(mask.shape)}")
        pooled, tokens, tokens_mask = self.prepare_cond(cond, cond_mask, x.shape[0])
        rotary = self.rotary_table(x.shape[1], x.device)
        for layer in self.layers:
            x = layer(x, mask=mask, rotary=rotary, cond=pooled, cond_tokens=tokens, cond_mask=tokens_mask)
        return x

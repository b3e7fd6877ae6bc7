"""Attention building blocks: rotary positions, multi-head attention through
`scaled_dot_product_attention`, feed-forward, and a pre-norm transformer encoder.

Masks are bool with True = keep (a real token). Shapes: x `(B, N, D)`, key mask `(B, M)`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


class RotaryEmbedding(nn.Module):
    """Rotary position embedding (Su et al. 2021) over the first `dim` channels of each head."""

    def __init__(self, dim: int, theta: float = 10000.0):
        super().__init__()
        if dim % 2:
            raise ValueError(f"rotary dim must be even, got {dim}")
        inv_freq = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, positions: torch.Tensor | int) -> tuple[torch.Tensor, torch.Tensor]:
        """positions `(N,)` (or a length) -> cos, sin `(N, dim)`."""
        if isinstance(positions, int):
            positions = torch.arange(positions, device=self.inv_freq.device)
        freqs = positions.float()[:, None] * self.inv_freq[None, :]
        freqs = torch.cat((freqs, freqs), dim=-1)
        return freqs.cos(), freqs.sin()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x `(B, H, N, Dh)`; cos/sin `(N, R)` with R <= Dh rotate the first R channels."""
    r = cos.shape[-1]
    rot, rest = x[..., :r], x[..., r:]
    rot = rot * cos.to(x.dtype) + rotate_half(rot) * sin.to(x.dtype)
    return torch.cat((rot, rest), dim=-1) if rest.shape[-1] else rot


def key_padding_bias(mask: torch.Tensor | None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(B, M) keep-mask -> SDPA bool mask (B, 1, 1, M) and the rows with no key at all (B,).

    A batch item whose keys are all masked attends to everything (so SDPA yields no NaN) and the
    caller zeroes its output.
    """
    if mask is None:
        return None, None
    empty = ~mask.any(dim=-1)
    safe = mask | empty[:, None]
    return safe[:, None, None, :], empty


class Attention(nn.Module):
    """Multi-head (self- or cross-) attention via `F.scaled_dot_product_attention`.

    forward(x (B,N,D), mask=(B,N) keep, context=(B,M,Dc), context_mask=(B,M), rotary=(cos, sin),
    attn_bias=(B|1, H|1, N, M) float added to the logits, causal=bool) -> (B, N, D).
    """

    def __init__(self, dim: int, heads: int = 8, dim_head: int = 64, dropout: float = 0.0,
                 context_dim: int | None = None, qk_norm: bool = False):
        super().__init__()
        inner = heads * dim_head
        self.heads, self.dim_head, self.dropout = heads, dim_head, dropout
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(context_dim or dim, inner * 2, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)
        self.q_norm = nn.LayerNorm(dim_head) if qk_norm else nn.Identity()
        self.k_norm = nn.LayerNorm(dim_head) if qk_norm else nn.Identity()

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, context: torch.Tensor | None = None,
                context_mask: torch.Tensor | None = None, rotary: tuple[torch.Tensor, torch.Tensor] | None = None,
                attn_bias: torch.Tensor | None = None, causal: bool = False) -> torch.Tensor:
        is_cross = context is not None
        kv_input = context if is_cross else x
        kv_mask = context_mask if is_cross else mask
        q = rearrange(self.to_q(x), "b n (h d) -> b h n d", h=self.heads)
        k, v = rearrange(self.to_kv(kv_input), "b m (two h d) -> two b h m d", two=2, h=self.heads)
        q, k = self.q_norm(q), self.k_norm(k)
        if rotary is not None and not is_cross:
            cos, sin = rotary
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        # the CPU flash kernel is markedly faster on contiguous (B, H, N, Dh) inputs than on strided views
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        sdpa_mask, empty = key_padding_bias(kv_mask)
        if attn_bias is not None:
            bias = attn_bias.to(q.dtype)
            if sdpa_mask is not None:
                bias = bias.masked_fill(~sdpa_mask, float("-inf"))
            sdpa_mask = bias
        if causal:
            n, m = q.shape[-2], k.shape[-2]
            tri = torch.ones(n, m, dtype=torch.bool, device=x.device).tril(m - n)
            sdpa_mask = tri if sdpa_mask is None else (
                sdpa_mask & tri if sdpa_mask.dtype == torch.bool else sdpa_mask.masked_fill(~tri, float("-inf")))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=sdpa_mask,
                                             dropout_p=self.dropout if self.training else 0.0)
        if empty is not None and empty.any():
            out = out.masked_fill(empty[:, None, None, None], 0.0)
        return self.to_out(rearrange(out, "b h n d -> b n (h d)"))


class FeedForward(nn.Module):
    """Linear -> activation (optionally gated: GEGLU / SwiGLU) -> dropout -> Linear."""

    def __init__(self, dim: int, mult: float = 4.0, dropout: float = 0.0, activation: str = "gelu", glu: bool = False):
        super().__init__()
        hidden = int(dim * mult)
        act = {"gelu": nn.GELU, "swish": nn.SiLU, "silu": nn.SiLU, "relu": nn.ReLU}[activation]()
        self.glu = glu
        self.proj_in = nn.Linear(dim, hidden * (2 if glu else 1))
        self.act = act
        self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.proj_in(x)
        if self.glu:
            h, gate = h.chunk(2, dim=-1)
            h = h * self.act(gate)
        elif not torch.is_grad_enabled() and isinstance(self.act, nn.SiLU):
            h = F.silu(h, inplace=True)  # inference: no autograd graph needs h, save a (B, N, hidden) tensor
        else:
            h = self.act(h)
        return self.net(h)


class TransformerBlock(nn.Module):
    """Pre-norm block: self-attention (+ optional cross-attention) + feed-forward, residual each."""

    def __init__(self, dim: int, heads: int = 8, dim_head: int = 64, ff_mult: float = 4.0, dropout: float = 0.0,
                 context_dim: int | None = None):
        super().__init__()
        self.attn_norm = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, dim_head, dropout)
        self.cross_norm = nn.LayerNorm(dim) if context_dim else None
        self.cross = Attention(dim, heads, dim_head, dropout, context_dim=context_dim) if context_dim else None
        self.ff_norm = nn.LayerNorm(dim)
        self.ff = FeedForward(dim, ff_mult, dropout)

    def forward(self, x, mask=None, rotary=None, attn_bias=None, causal=False, context=None, context_mask=None):
        x = x + self.attn(self.attn_norm(x), mask=mask, rotary=rotary, attn_bias=attn_bias, causal=causal)
        if self.cross is not None and context is not None:
            x = x + self.cross(self.cross_norm(x), context=context, context_mask=context_mask)
        return x + self.ff(self.ff_norm(x))


class Transformer(nn.Module):
    """A stack of `TransformerBlock`s with optional rotary positions and a final LayerNorm.

    forward(x (B,N,D), mask=(B,N), attn_bias=..., causal=False, context=..., context_mask=...) -> (B,N,D).
    """

    def __init__(self, dim: int, depth: int, heads: int = 8, dim_head: int = 64, ff_mult: float = 4.0,
                 dropout: float = 0.0, rotary: bool = False, context_dim: int | None = None):
        super().__init__()
        self.layers = nn.ModuleList(
            TransformerBlock(dim, heads, dim_head, ff_mult, dropout, context_dim) for _ in range(depth))
        self.rotary = RotaryEmbedding(dim_head) if rotary else None
        self.norm = nn.LayerNorm(dim)

    def forward(self, x, mask=None, attn_bias=None, causal=False, context=None, context_mask=None):
        rot = self.rotary(x.shape[1]) if self.rotary is not None else None
        for layer in self.layers:
            x = layer(x, mask=mask, rotary=rot, attn_bias=attn_bias, causal=causal, context=context,
                      context_mask=context_mask)
        return self.norm(x)

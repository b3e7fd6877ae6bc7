"""Local (sliding-window) self-attention for long sequences, exact and O(N * window).

Query i sees key j when `|i - j| <= window` (or `0 <= i - j <= window` when causal): a banded mask.
Instead of materialising an N x N mask, the sequence is cut into blocks of `window` frames; each
block attends to itself and its two neighbours (3 * window keys) under the same banded mask, which
gives exactly the banded attention in linear time and memory, through
`F.scaled_dot_product_attention`. Rotary positions (`soundweave.nn.attention.RotaryEmbedding`) make
the scores depend on relative offsets only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .attention import FeedForward, RotaryEmbedding, apply_rotary


def banded_block_mask(window: int, causal: bool, device: torch.device | None = None) -> torch.Tensor:
    """Bool `(window, 3 * window)`: query offset q in the middle block vs key offset k in [prev|this|next]."""
    q = torch.arange(window, device=device)[:, None] + window
    k = torch.arange(3 * window, device=device)[None, :]
    delta = q - k
    return (delta >= 0) & (delta <= window) if causal else delta.abs() <= window


class LocalAttention(nn.Module):
    """Multi-head self-attention restricted to a window of `window` frames on each side.

    forward(x (B, N, D), mask=(B, N) bool keep or None) -> (B, N, D).
    """

    def __init__(self, dim: int, window: int, heads: int = 8, dim_head: int = 64, causal: bool = False,
                 rotary: bool = True):
        super().__init__()
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        inner = heads * dim_head
        self.window, self.heads, self.causal = window, heads, causal
        self.to_qkv = nn.Linear(dim, inner * 3, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)
        self.rotary = RotaryEmbedding(dim_head) if rotary else None

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        b, n, _ = x.shape
        w = self.window
        q, k, v = rearrange(self.to_qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.heads)
        if self.rotary is not None:
            cos, sin = self.rotary(n)
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        keep = torch.ones(b, n, dtype=torch.bool, device=x.device) if mask is None else mask.bool()
        if n <= w:  # one block: plain attention under the band (which is then only the causal limit)
            band = banded_block_mask(n, self.causal, x.device)[:, n : 2 * n] if self.causal else None
            attn_mask = keep[:, None, None, :] | ~keep.any(-1)[:, None, None, None]
            if band is not None:
                attn_mask = attn_mask & band
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
            return self.to_out(rearrange(out, "b h n d -> b n (h d)"))
        blocks = -(-n // w)
        pad = blocks * w - n
        # pad one block on each side plus the tail so every block has a previous and a next block
        q = F.pad(q, (0, 0, 0, pad))
        k = F.pad(k, (0, 0, w, pad + w))
        v = F.pad(v, (0, 0, w, pad + w))
        keep_k = F.pad(keep, (w, pad + w), value=False)
        q = rearrange(q, "b h (nb w) d -> b nb h w d", w=w)
        # keys for block i: padded positions [i*w, i*w + 3w) = original [(i-1)w, (i+2)w)
        k = k.unfold(2, 3 * w, w)  # (b, h, nb, d, 3w)
        v = v.unfold(2, 3 * w, w)
        k = rearrange(k, "b h nb d m -> b nb h m d")
        v = rearrange(v, "b h nb d m -> b nb h m d")
        keep_k = keep_k.unfold(1, 3 * w, w)  # (b, nb, 3w)
        band = banded_block_mask(w, self.causal, x.device)  # (w, 3w)
        attn_mask = band[None, None, None] & keep_k[:, :, None, None, :]  # (b, nb, 1, w, 3w)
        # the query itself is always a valid key unless it is padding; padding rows get a dummy key
        attn_mask = attn_mask | ~attn_mask.any(-1, keepdim=True)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # (b, nb, h, w, d)
        out = rearrange(out, "b nb h w d -> b (nb w) (h d)")[:, :n]
        return self.to_out(out)


class LocalTransformer(nn.Module):
    """Pre-norm residual blocks of `LocalAttention` + feed-forward; `(B, N, D) -> (B, N, D)`.

    No final norm: it sits inside a codec bottleneck, where the residual path keeps the latents' scale.
    """

    def __init__(self, dim: int, depth: int, window: int, heads: int = 8, dim_head: int = 64, ff_mult: float = 4.0,
                 causal: bool = False):
        super().__init__()
        self.layers = nn.ModuleList()
        for _ in range(depth):
            self.layers.append(nn.ModuleList([
                nn.LayerNorm(dim), LocalAttention(dim, window, heads, dim_head, causal),
                nn.LayerNorm(dim), FeedForward(dim, ff_mult),
            ]))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        for attn_norm, attn, ff_norm, ff in self.layers:
            x = x + attn(attn_norm(x), mask=mask)
            x = x + ff(ff_norm(x))
        return x

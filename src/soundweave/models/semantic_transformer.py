"""SemanticTransformer: MusicLM's / AudioLM's first stage, a decoder-only transformer over semantic ids.

    model = SemanticTransformer(num_semantic_tokens=512, dim=1024, depth=6, audio_text_condition=True)
    loss = model(ids, cond=conds)                          # ids (B, N); conds (B, q, cond_dim) MuLaN tokens
    ids = model.generate(cond=conds, seconds=10, cond_scale=3.0, temperature=0.95, top_k=50, seed=0)

Sequence layout: `[cond_1 .. cond_q | BOS | x_1 .. x_N]`, causal self-attention with rotary positions, the
conditioning tokens (the `semantic` namespace of `MuLaNEmbedQuantizer`) projected to `dim` as a prefix.
Classifier-free guidance: in training each item's conditioning is replaced by a learned null token with
probability `cond_drop_prob`; `generate(cond_scale=s)` runs conditioned and null rows in one batch and
samples from `null + s * (cond - null)` logits. Generation length is fixed (`num_tokens` or `seconds` at
`rate` tokens/s; no EOS, so nothing is learned from crop lengths); longer than `max_seq_len` tokens it
slides a window that keeps its last half as context. A KV cache makes each new token one short pass.

Citation: Borsos et al., "AudioLM", arXiv 2209.03143; Agostinelli et al., "MusicLM", arXiv 2301.11325;
Ho & Salimans, "Classifier-Free Diffusion Guidance", arXiv 2207.12598.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..errors import ConfigError, ShapeError
from ..nn.attention import FeedForward, RotaryEmbedding, apply_rotary
from ..runtime import autocast, check_precision, make_generator
from ..samplers.top_k import keep_top_k
from .base import PretrainedModel

KVCache = list[tuple[torch.Tensor, torch.Tensor]]


@dataclass
class SemanticTransformerConfig:
    num_semantic_tokens: int
    dim: int = 1024
    depth: int = 6
    heads: int = 8
    dim_head: int = 64
    ff_mult: float = 4.0
    dropout: float = 0.0
    audio_text_condition: bool = False
    cond_dim: int | None = None  # width of the conditioning tokens (default: dim)
    cond_drop_prob: float = 0.5
    max_seq_len: int = 1024  # generation window in semantic tokens (longer output slides it)
    rate: float = 25.0  # semantic tokens per second (for `seconds=`)

    def __post_init__(self):
        for name in ("num_semantic_tokens", "dim", "depth", "heads", "dim_head", "max_seq_len"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"SemanticTransformer {name} must be a positive integer, got {value!r}")
        if self.dim_head % 2:
            raise ConfigError(f"dim_head must be even (rotary positions), got {self.dim_head}")
        if self.cond_dim is None:
            self.cond_dim = self.dim
        if isinstance(self.cond_dim, bool) or not isinstance(self.cond_dim, int) or self.cond_dim < 1:
            raise ConfigError(f"cond_dim must be a positive integer or None, got {self.cond_dim!r}")
        if not 0.0 <= self.cond_drop_prob < 1.0:
            raise ConfigError(f"cond_drop_prob must be in [0, 1), got {self.cond_drop_prob}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.max_seq_len < 2:
            raise ConfigError(f"max_seq_len must be >= 2 (it keeps half a window as context), got {self.max_seq_len}")
        if not self.rate > 0:
            raise ConfigError(f"rate must be > 0 tokens per second, got {self.rate}")


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with rotary positions and an optional KV cache."""

    def __init__(self, dim: int, heads: int, dim_head: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.to_qkv = nn.Linear(dim, 3 * heads * dim_head, bias=False)
        self.to_out = nn.Linear(heads * dim_head, dim, bias=False)

    def forward(self, x: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor],
                cache: tuple[torch.Tensor, torch.Tensor] | None = None):
        """x `(B, n, D)` (the n newest positions); rotary for those positions; cache: keys/values of the
        earlier positions `(B, H, m, Dh)`. -> (out `(B, n, D)`, new cache)."""
        q, k, v = rearrange(self.to_qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.heads)
        cos, sin = rotary
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if cache is not None:
            k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
        n, m = q.shape[2], k.shape[2]
        drop = self.dropout if self.training else 0.0
        if n == m:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=drop)
        else:  # new positions after cached ones: query i sees keys up to m - n + i
            allowed = torch.ones(n, m, dtype=torch.bool, device=x.device).tril(m - n)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=drop)
        return self.to_out(rearrange(out, "b h n d -> b n (h d)")), (k, v)


class DecoderBlock(nn.Module):
    def __init__(self, dim: int, heads: int, dim_head: int, ff_mult: float, dropout: float):
        super().__init__()
        self.attn_norm = nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, heads, dim_head, dropout)
        self.ff_norm = nn.LayerNorm(dim)
        self.ff = FeedForward(dim, ff_mult, dropout)

    def forward(self, x, rotary, cache=None):
        h, cache = self.attn(self.attn_norm(x), rotary, cache)
        x = x + h
        return x + self.ff(self.ff_norm(x)), cache


class SemanticTransformer(PretrainedModel):
    """Decoder-only transformer over semantic ids, conditioned on MuLaN tokens as a prefix (see module doc).

    Args (musiclm-pytorch names): num_semantic_tokens (K, the tokenizer's codebook_size), dim, depth,
        heads, dim_head, ff_mult, dropout, audio_text_condition (take conditioning tokens), cond_dim (their
        width; default dim), cond_drop_prob (classifier-free guidance training), max_seq_len (generation
        window), rate (tokens per second, for `seconds=`).
    """

    def __init__(self, num_semantic_tokens: int, dim: int = 1024, depth: int = 6, heads: int = 8,
                 dim_head: int = 64, ff_mult: float = 4.0, dropout: float = 0.0, audio_text_condition: bool = False,
                 cond_dim: int | None = None, cond_drop_prob: float = 0.5, max_seq_len: int = 1024,
                 rate: float = 25.0):
        super().__init__()
        self.config = c = SemanticTransformerConfig(num_semantic_tokens, dim, depth, heads, dim_head, ff_mult,
                                                    dropout, audio_text_condition, cond_dim, cond_drop_prob,
                                                    max_seq_len, float(rate))
        self.token_embed = nn.Embedding(c.num_semantic_tokens, c.dim)
        self.bos = nn.Parameter(torch.randn(c.dim) * 0.02)
        if c.audio_text_condition:
            self.cond_proj = nn.Sequential(nn.Linear(c.cond_dim, c.dim), nn.LayerNorm(c.dim))
            self.null_cond = nn.Parameter(torch.randn(c.dim) * 0.02)
        self.rotary = RotaryEmbedding(c.dim_head)
        self.layers = nn.ModuleList(DecoderBlock(c.dim, c.heads, c.dim_head, c.ff_mult, c.dropout)
                                    for _ in range(c.depth))
        self.norm = nn.LayerNorm(c.dim)
        self.to_logits = nn.Linear(c.dim, c.num_semantic_tokens, bias=False)
        nn.init.normal_(self.token_embed.weight, std=0.02)

    @property
    def num_semantic_tokens(self) -> int:
        return self.config.num_semantic_tokens

    @property
    def device(self) -> torch.device:
        return self.bos.device

    # -- inputs --------------------------------------------------------------------------------------------
    def check_ids(self, ids: torch.Tensor, name: str = "ids") -> torch.Tensor:
        k = self.num_semantic_tokens
        if not isinstance(ids, torch.Tensor) or ids.is_floating_point() or ids.dtype == torch.bool:
            got = ids.dtype if isinstance(ids, torch.Tensor) else type(ids).__name__
            raise ShapeError(f"{name} must be an integer tensor of semantic ids (B, N), got {got}")
        if ids.ndim == 1:
            ids = ids[None]
        if ids.ndim != 2 or ids.shape[0] == 0 or ids.shape[1] == 0:
            raise ShapeError(f"{name} must be (B, N) semantic ids with N >= 1, got shape {tuple(ids.shape)}")
        lo, hi = int(ids.min()), int(ids.max())
        if lo < 0 or hi >= k:
            raise ShapeError(f"{name} must lie in [0, {k - 1}] (num_semantic_tokens {k}), got values in [{lo}, {hi}]")
        return ids.long().to(self.device)

    def embed_cond(self, cond: torch.Tensor | None, batch: int, keep: torch.Tensor | None = None
                   ) -> torch.Tensor | None:
        """Conditioning tokens `(B, q, cond_dim)` -> prefix `(B, q, dim)`; rows where `keep` is False (and
        every row when cond is None) get the learned null token instead. None for an unconditioned model."""
        c = self.config
        if not c.audio_text_condition:
            if cond is not None:
                raise ConfigError("this SemanticTransformer takes no conditioning: build it with "
                                  "audio_text_condition=True to condition on MuLaN tokens")
            return None
        if cond is None:
            return self.null_cond.expand(batch, 1, -1)
        if not isinstance(cond, torch.Tensor) or not cond.is_floating_point():
            raise ShapeError(f"cond must be float conditioning tokens (B, q, {c.cond_dim}), got "
                             f"{cond.dtype if isinstance(cond, torch.Tensor) else type(cond).__name__}")
        if cond.ndim == 2:
            cond = cond[:, None]
        if cond.ndim != 3 or cond.shape[-1] != c.cond_dim or cond.shape[1] == 0:
            raise ShapeError(f"cond must be (B, q, cond_dim={c.cond_dim}), got {tuple(cond.shape)}")
        if cond.shape[0] == 1 and batch > 1:
            cond = cond.expand(batch, -1, -1)
        if cond.shape[0] != batch:
            raise ShapeError(f"cond has batch {cond.shape[0]} but the ids have {batch}")
        prefix = self.cond_proj(cond.to(self.device, self.bos.dtype))
        null = self.null_cond.to(prefix.dtype).expand_as(prefix)
        if keep is not None:
            prefix = torch.where(keep.to(self.device)[:, None, None], prefix, null)
        return prefix

    # -- the network ---------------------------------------------------------------------------------------
    def _run(self, x: torch.Tensor, start: int = 0, cache: KVCache | None = None) -> tuple[torch.Tensor, KVCache]:
        """Embedded positions `start .. start + n - 1` `(B, n, D)` -> hidden `(B, n, D)` and the KV cache."""
        cos, sin = self.rotary(torch.arange(start, start + x.shape[1], device=x.device))
        new_cache = []
        for i, layer in enumerate(self.layers):
            x, kv = layer(x, (cos, sin), None if cache is None else cache[i])
            new_cache.append(kv)
        return self.norm(x), new_cache

    def _sequence(self, ids: torch.Tensor | None, prefix: torch.Tensor | None, batch: int) -> torch.Tensor:
        parts = [] if prefix is None else [prefix]
        parts.append(self.bos.expand(batch, 1, -1))
        if ids is not None and ids.shape[1]:
            parts.append(self.token_embed(ids))
        return torch.cat(parts, dim=1)

    def forward(self, ids: torch.Tensor, cond: torch.Tensor | None = None, mask: torch.Tensor | None = None, *,
                cond_drop_prob: float | None = None, return_loss: bool = True, return_accuracy: bool = False,
                generator: torch.Generator | None = None):
        """Next-token cross-entropy of `ids` `(B, N)` given `cond` `(B, q, cond_dim)` (mask `(B, N)` True =
        real token). In training mode each item's condition is dropped with `cond_drop_prob` (default the
        config's). `return_loss=False` gives the logits `(B, N, K)`; `return_accuracy` gives (loss, accuracy)."""
        ids = self.check_ids(ids)
        B, N = ids.shape
        if mask is not None and (not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool
                                 or tuple(mask.shape) != (B, N)):
            raise ShapeError(f"mask must be bool (B, N) = {(B, N)} with True = real token")
        keep = None
        p = self.config.cond_drop_prob if cond_drop_prob is None else float(cond_drop_prob)
        if self.training and p > 0 and cond is not None:
            keep = torch.rand(B, generator=generator, device=self.device) >= p
        prefix = self.embed_cond(cond, B, keep)
        x = self._sequence(ids[:, :-1], prefix, B)
        hidden, _ = self._run(x)
        logits = self.to_logits(hidden[:, hidden.shape[1] - N:])  # positions BOS .. x_{N-1} predict x_1 .. x_N
        if not return_loss:
            return logits
        labels = ids if mask is None else ids.masked_fill(~mask.to(ids.device), -100)
        loss = F.cross_entropy(logits.float().reshape(B * N, -1), labels.reshape(-1), ignore_index=-100)
        if not return_accuracy:
            return loss
        with torch.no_grad():
            valid = labels >= 0
            accuracy = float((logits.argmax(-1) == ids)[valid].float().mean()) if valid.any() else float("nan")
        return loss, accuracy

    # -- generation ------------------------------------------------------------------------------------------
    def _resolve_length(self, num_tokens, seconds, rate) -> int:
        if num_tokens is not None and seconds is not None:
            raise ConfigError("give num_tokens or seconds, not both")
        if seconds is not None:
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
                raise ConfigError(f"seconds must be a positive number, got {seconds!r}")
            num_tokens = max(1, math.ceil(round(seconds * rate, 6)))
        if num_tokens is None:
            raise ConfigError("give the length: num_tokens= (semantic tokens) or seconds=")
        if isinstance(num_tokens, bool) or not isinstance(num_tokens, int) or num_tokens < 1:
            raise ConfigError(f"num_tokens must be a positive integer, got {num_tokens!r}")
        return num_tokens

    @torch.no_grad()
    def generate(self, batch_size: int | None = None, *, cond: torch.Tensor | None = None,
                 num_tokens: int | None = None, seconds: float | None = None, prime_ids: torch.Tensor | None = None,
                 prime_wave: torch.Tensor | None = None, prime_wave_sample_rate: int | None = None,
                 wav2vec: nn.Module | None = None, temperature: float = 1.0, top_k: int | None = None,
                 cond_scale: float = 3.0, generator: torch.Generator | None = None, seed: int | None = None,
                 use_kv_cache: bool = True, precision: str = "fp32",
                 callback: Callable[[int, int], None] | None = None) -> torch.Tensor:
        """Sample semantic ids `(B, num_tokens)` (the length includes the prime, which comes back unchanged).

        cond: `(B, q, cond_dim)` conditioning tokens (or `(1, q, d)` for every row); without it an
        unconditioned sample. prime_ids `(B|1, P)`, or prime_wave `(B|1, T)` tokenized by `wav2vec` (a
        SemanticTokenizer), continue that audio. temperature 0 = greedy; top_k keeps the k likeliest tokens.
        cond_scale != 1 applies classifier-free guidance. `seconds` uses `wav2vec.rate` if given, else the
        config's `rate`. `callback(done, total)` after every new token.
        """
        check_precision(precision)
        if not isinstance(temperature, (int, float)) or temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {temperature!r}")
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
            raise ConfigError(f"top_k must be a positive integer or None, got {top_k!r}")
        rate = float(getattr(wav2vec, "rate", self.config.rate))
        total = self._resolve_length(num_tokens, seconds, rate)
        if prime_wave is not None:
            if prime_ids is not None:
                raise ConfigError("give prime_ids or prime_wave, not both")
            if wav2vec is None:
                raise ConfigError("prime_wave needs wav2vec= (the SemanticTokenizer that made the training ids)")
            prime_ids = wav2vec(prime_wave, input_sample_hz=prime_wave_sample_rate)
        if prime_ids is not None:
            prime_ids = self.check_ids(prime_ids, "prime_ids")
            if prime_ids.shape[1] >= total:
                raise ShapeError(f"the prime has {prime_ids.shape[1]} tokens but only {total} are asked for; the "
                                 "length includes the prime, so ask for more")
        sizes = {}
        if batch_size is not None:
            if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
                raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
            sizes["batch_size"] = batch_size
        if isinstance(cond, torch.Tensor) and cond.ndim == 3 and cond.shape[0] != 1:
            sizes["cond"] = cond.shape[0]
        if prime_ids is not None and prime_ids.shape[0] != 1:
            sizes["prime"] = prime_ids.shape[0]
        if len(set(sizes.values())) > 1:
            raise ShapeError(f"inconsistent batch sizes: {sizes}")
        B = next(iter(sizes.values()), 1)
        guided = cond_scale != 1.0 and self.config.audio_text_condition and cond is not None
        prefix = self.embed_cond(cond, B)
        if guided:
            prefix = torch.cat([prefix, self.embed_cond(None, B).expand_as(prefix)])
        rows = 2 * B if guided else B
        out = torch.zeros(B, 0, dtype=torch.long, device=self.device)
        if prime_ids is not None:
            out = prime_ids.expand(B, -1).clone()
        generator = make_generator(seed, generator, device=self.device)
        window, start_len = self.config.max_seq_len, out.shape[1]

        was_training = self.training
        self.eval()
        try:
            with autocast(self.device, precision):
                cache, context_start, last = None, 0, None
                while out.shape[1] < total:
                    if out.shape[1] - context_start >= window:  # slide: keep the last half window as context
                        context_start, cache = out.shape[1] - window // 2, None
                    if cache is None or not use_kv_cache:
                        context = out[:, context_start:]
                        if guided:
                            context = torch.cat([context, context])
                        x = self._sequence(context, prefix, rows)
                        hidden, cache = self._run(x)
                        cache = cache if use_kv_cache else None
                    else:
                        x = self.token_embed(last if not guided else torch.cat([last, last]))
                        position = cache[0][0].shape[2]
                        hidden, cache = self._run(x, start=position, cache=cache)
                    logits = self.to_logits(hidden[:, -1]).float()
                    if guided:
                        conditional, unconditional = logits.chunk(2)
                        logits = unconditional + cond_scale * (conditional - unconditional)
                    last = self._sample(logits, temperature, top_k, generator)[:, None]
                    out = torch.cat([out, last], dim=1)
                    if callback is not None:
                        callback(out.shape[1] - start_len, total - start_len)
        finally:
            self.train(was_training)
        return out

    @staticmethod
    def _sample(logits: torch.Tensor, temperature: float, top_k: int | None, generator) -> torch.Tensor:
        if temperature == 0:
            return logits.argmax(-1)
        probs = torch.softmax(keep_top_k(logits, top_k) / temperature, dim=-1)
        return torch.multinomial(probs, 1, generator=generator)[:, 0]


__all__ = ["SemanticTransformer", "SemanticTransformerConfig"]

"""TextToSemantic: SPEAR-TTS's first stage - text -> semantic (speech) units with an encoder-decoder.

    t2s = TextToSemantic(dim=512, source_depth=12, target_depth=12, num_text_token_ids=50000,
                         num_semantic_token_ids=20000, use_openai_tokenizer=True)
    t2s.load("runs/t2s")                                  # or TextToSemantic.from_pretrained("runs/t2s")
    units = t2s.generate(["the rain in spain"], seed=0)   # (B, S) int64, padded with -1 after each item's EOS
    loss, parts = t2s(["the rain in spain"], target_ids)  # teacher-forced cross-entropy (units + EOS)

The encoder reads text tokens; the decoder predicts the unit sequence autoregressively and ends it with EOS.
Ids: semantic units 0..K-1, EOS = K (as upstream: the id after the vocabulary), BOS = K + 1 (decoder input
only, never predicted). Padding is not a token: padded targets are `-1` and left out of the loss (ignore
index), padded decoder inputs are masked out of attention, and every item's EOS is a real target so that the
model learns to stop (upstream padded with 0, a real unit, and never learned EOS from scratch). Nothing is
frozen: the whole decoder trains.

Text: `use_openai_tokenizer=True` asked for OpenAI's BPE vocabulary upstream. That vocabulary is a download
and is not installed offline, so here the argument is accepted and texts are tokenized as UTF-8 bytes
(`ByteTokenizer`, 259 ids, lower-cased) inside the `num_text_token_ids` embedding table; a warning says so
once. Pre-tokenized `(B, L)` id tensors (values < `num_text_token_ids`) may be passed instead of strings.

Citation: Kharitonov, Vincent, Borsos, Marinier, Girgin, Pietquin, Sharifi, Tagliasacchi, Zeghidour. "Speak,
Read and Prompt: High-Fidelity Text-to-Speech with Minimal Supervision" (SPEAR-TTS), arXiv 2302.03540 (2023).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..errors import CheckpointError, ConfigError, ShapeError
from ..runtime import make_generator
from ..samplers.top_k import keep_top_k
from .base import CONFIG_NAME, WEIGHTS_NAME, PretrainedModel, read_config
from .tokenizers import PAD_ID, ByteTokenizer, check_texts

PAD = -1  # the pad value of unit sequences (targets and generate's output); never a token
_WARNED_OPENAI = [False]


def _warn_openai_tokenizer_once() -> None:
    if not _WARNED_OPENAI[0]:
        _WARNED_OPENAI[0] = True
        warnings.warn("TextToSemantic(use_openai_tokenizer=True): OpenAI's BPE vocabulary is not installed "
                      "(it is a download); texts are tokenized as UTF-8 bytes (soundweave ByteTokenizer, 259 ids) "
                      "inside the num_text_token_ids table instead. Models trained here use the same tokenizer.",
                      UserWarning, stacklevel=3)


@dataclass
class TextToSemanticConfig:
    dim: int = 512
    source_depth: int = 12
    target_depth: int = 12
    num_text_token_ids: int | None = None
    num_semantic_token_ids: int = 500
    use_openai_tokenizer: bool = False
    heads: int = 8
    dim_head: int = 64
    ff_mult: float = 4.0
    dropout: float = 0.0
    max_source_len: int = 512
    max_target_len: int = 1024
    max_units_per_token: float = 4.0  # generate's default length cap: this many units per text token (+ 16)

    def __post_init__(self):
        for name in ("dim", "source_depth", "target_depth", "num_semantic_token_ids", "heads", "dim_head",
                     "max_source_len", "max_target_len"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"TextToSemantic {name} must be a positive integer, got {value!r}")
        n = self.num_text_token_ids
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise ConfigError(f"num_text_token_ids must be a positive integer or None, got {n!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if not self.ff_mult > 0 or not self.max_units_per_token > 0:
            raise ConfigError("ff_mult and max_units_per_token must be > 0")
        self.use_openai_tokenizer = bool(self.use_openai_tokenizer)

    @property
    def text_vocab(self) -> int:
        """Rows of the text embedding table: num_text_token_ids, at least the byte tokenizer's 259."""
        return max(self.num_text_token_ids or 0, ByteTokenizer().vocab_size)


def sinusoidal(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """positions `(N,)` -> `(N, dim)` sine/cosine position codes (Vaswani et al.)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=positions.device, dtype=torch.float32) / half)
    angles = positions.float()[:, None] * freqs[None]
    out = torch.cat([angles.sin(), angles.cos()], dim=-1)
    return F.pad(out, (0, dim - out.shape[-1]))


class _Attention(nn.Module):
    """Multi-head attention through SDPA, with an optional key/value cache for incremental decoding."""

    def __init__(self, dim: int, heads: int, dim_head: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.to_q = nn.Linear(dim, heads * dim_head, bias=False)
        self.to_kv = nn.Linear(dim, 2 * heads * dim_head, bias=False)
        self.to_out = nn.Linear(heads * dim_head, dim, bias=False)

    def project_kv(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k, v = rearrange(self.to_kv(context), "b m (two h d) -> two b h m d", two=2, h=self.heads)
        return k.contiguous(), v.contiguous()

    def forward(self, x: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor], attn_mask: torch.Tensor | None
                ) -> torch.Tensor:
        q = rearrange(self.to_q(x), "b n (h d) -> b h n d", h=self.heads).contiguous()
        k, v = kv
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                             dropout_p=self.dropout if self.training else 0.0)
        return self.to_out(rearrange(out, "b h n d -> b n (h d)"))


class _Block(nn.Module):
    """Pre-norm block: self-attention, (decoder only) cross-attention to the encoder, feed-forward."""

    def __init__(self, cfg: TextToSemanticConfig, cross: bool):
        super().__init__()
        d = cfg.dim
        self.self_norm = nn.LayerNorm(d)
        self.self_attn = _Attention(d, cfg.heads, cfg.dim_head, cfg.dropout)
        self.cross_norm = nn.LayerNorm(d) if cross else None
        self.cross_attn = _Attention(d, cfg.heads, cfg.dim_head, cfg.dropout) if cross else None
        self.ff_norm = nn.LayerNorm(d)
        hidden = int(d * cfg.ff_mult)
        self.ff = nn.Sequential(nn.Linear(d, hidden), nn.GELU(), nn.Dropout(cfg.dropout), nn.Linear(hidden, d))

    def forward(self, x, self_mask, cache=None, context_kv=None, context_mask=None):
        h = self.self_norm(x)
        k, v = self.self_attn.project_kv(h)
        if cache is not None:  # incremental decoding: append this step's keys/values
            if "k" in cache:
                k, v = torch.cat([cache["k"], k], dim=2), torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        x = x + self.self_attn(h, (k, v), self_mask)
        if self.cross_attn is not None:
            x = x + self.cross_attn(self.cross_norm(x), context_kv, context_mask)
        return x + self.ff(self.ff_norm(x))


class TextToSemantic(PretrainedModel):
    """Text -> semantic units, a T5-style encoder-decoder trained with teacher forcing. See the module docstring.

    Args (the spear-tts-pytorch names):
        dim, source_depth (encoder blocks), target_depth (decoder blocks), heads, dim_head, ff_mult, dropout.
        num_text_token_ids: rows of the text embedding (ids of pre-tokenized input must be below it).
        num_semantic_token_ids: K, the unit vocabulary (EOS = K).
        use_openai_tokenizer: accepted; offline it means the byte tokenizer (a warning says so once).
        max_source_len / max_target_len: longest text (tokens) and unit sequence (EOS included).
    """

    def __init__(self, dim: int = 512, source_depth: int = 12, target_depth: int = 12,
                 num_text_token_ids: int | None = None, num_semantic_token_ids: int = 500,
                 use_openai_tokenizer: bool = False, heads: int = 8, dim_head: int = 64, ff_mult: float = 4.0,
                 dropout: float = 0.0, max_source_len: int = 512, max_target_len: int = 1024,
                 max_units_per_token: float = 4.0):
        super().__init__()
        self.config = c = TextToSemanticConfig(dim, source_depth, target_depth, num_text_token_ids,
                                               num_semantic_token_ids, use_openai_tokenizer, heads, dim_head,
                                               ff_mult, dropout, max_source_len, max_target_len,
                                               max_units_per_token)
        if c.use_openai_tokenizer:
            _warn_openai_tokenizer_once()
        self.tokenizer = ByteTokenizer()
        self.text_embed = nn.Embedding(c.text_vocab, dim)
        self.unit_embed = nn.Embedding(c.num_semantic_token_ids + 2, dim)  # units, EOS, BOS
        self.encoder = nn.ModuleList(_Block(c, cross=False) for _ in range(source_depth))
        self.encoder_norm = nn.LayerNorm(dim)
        self.decoder = nn.ModuleList(_Block(c, cross=True) for _ in range(target_depth))
        self.decoder_norm = nn.LayerNorm(dim)
        self.to_logits = nn.Linear(dim, c.num_semantic_token_ids + 1)  # units + EOS; BOS is never predicted
        for emb in (self.text_embed, self.unit_embed):
            nn.init.normal_(emb.weight, std=0.02)

    # -- ids ---------------------------------------------------------------------------------------------------
    @property
    def num_semantic_token_ids(self) -> int:
        return self.config.num_semantic_token_ids

    @property
    def eos_id(self) -> int:
        return self.config.num_semantic_token_ids

    @property
    def bos_id(self) -> int:
        return self.config.num_semantic_token_ids + 1

    @property
    def device(self) -> torch.device:
        return self.text_embed.weight.device

    # -- persistence ------------------------------------------------------------------------------------------
    def load(self, path: str | os.PathLike, strict: bool = True) -> TextToSemantic:
        """Load trained weights into this model in place (spear-tts-pytorch's `load`): a folder written by
        `save_pretrained` (its config must describe this architecture) or a `.safetensors` file. Returns self."""
        from safetensors import SafetensorError
        from safetensors.torch import load_model

        path = Path(path).expanduser()
        if path.is_dir():
            stored = read_config(path)
            stored.pop("_class", None)
            mine = self.get_config()
            arch = ("dim", "source_depth", "target_depth", "num_semantic_token_ids", "heads", "dim_head", "ff_mult")
            diff = {k: (mine.get(k), stored.get(k)) for k in arch if k in stored and stored[k] != mine.get(k)}
            if TextToSemanticConfig(**{k: v for k, v in stored.items() if k in mine}).text_vocab \
                    != self.config.text_vocab:
                diff["num_text_token_ids"] = (mine.get("num_text_token_ids"), stored.get("num_text_token_ids"))
            if diff:
                raise CheckpointError(f"{str(path)!r} holds a TextToSemantic of another architecture "
                                      f"(this model vs stored: {diff}); build it with the stored config or use "
                                      "TextToSemantic.from_pretrained(folder)")
            file = path / WEIGHTS_NAME
        elif path.is_file():
            file = path
        else:
            raise CheckpointError(f"TextToSemantic.load: {str(path)!r} does not exist (give a folder with "
                                  f"{CONFIG_NAME} + {WEIGHTS_NAME}, or a .safetensors file)")
        if not file.is_file():
            raise CheckpointError(f"{str(path)!r} has no {WEIGHTS_NAME}")
        try:
            missing, unexpected = load_model(self, str(file), strict=False, device=str(self.device))
        except (SafetensorError, RuntimeError, OSError) as exc:
            raise CheckpointError(f"could not read TextToSemantic weights {str(file)!r}: {exc}") from exc
        if strict and (missing or unexpected):
            raise CheckpointError(f"weights in {str(file)!r} do not match this TextToSemantic: missing "
                                  f"{sorted(missing)[:6]}, unexpected {sorted(unexpected)[:6]}")
        self.eval()
        return self

    # -- inputs -------------------------------------------------------------------------------------------------
    def tokenize(self, texts: str | Sequence[str] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Texts (or pre-tokenized ids `(B, L)`, pad 0) -> ids `(B, L)` and mask `(B, L)` on the model's device."""
        if isinstance(texts, torch.Tensor):
            if texts.is_floating_point() or texts.dtype == torch.bool or texts.ndim != 2 or texts.shape[1] == 0:
                raise ShapeError(f"text token ids must be an integer tensor (B, L), got {texts.dtype} "
                                 f"{tuple(texts.shape)}")
            lo, hi = int(texts.min()), int(texts.max())
            if lo < 0 or hi >= self.config.text_vocab:
                raise ShapeError(f"text token ids must lie in [0, {self.config.text_vocab}), got [{lo}, {hi}]")
            ids = texts.long()
            mask = ids != PAD_ID
        else:
            texts = check_texts(texts, "texts")
            ids, mask = self.tokenizer(texts, max_length=self.config.max_source_len)
        return ids.to(self.device), mask.to(self.device)

    def check_targets(self, target: torch.Tensor | Sequence[Sequence[int]], batch: int) -> torch.Tensor:
        """Unit sequences -> `(B, S)` int64 with EOS after each item and -1 padding (what the loss reads)."""
        K = self.num_semantic_token_ids
        if isinstance(target, torch.Tensor):
            if target.is_floating_point() or target.dtype == torch.bool or target.ndim != 2:
                raise ShapeError(f"target units must be an integer tensor (B, S) padded with -1, got "
                                 f"{target.dtype} {tuple(target.shape)}")
            rows = [row[row != PAD].tolist() for row in target.cpu()]
        else:
            rows = [list(map(int, r)) for r in target]
        if len(rows) != batch:
            raise ShapeError(f"{len(rows)} target sequences for {batch} texts")
        out = []
        for i, row in enumerate(rows):
            if row and row[-1] == self.eos_id:
                row = row[:-1]
            if not row:
                raise ShapeError(f"target sequence {i} is empty; every text needs at least one unit")
            if min(row) < 0 or max(row) >= K:
                raise ShapeError(f"target units must lie in [0, {K - 1}] (num_semantic_token_ids {K}), item {i} "
                                 f"has values in [{min(row)}, {max(row)}]")
            if len(row) + 1 > self.config.max_target_len:
                raise ShapeError(f"target sequence {i} has {len(row)} units; max_target_len is "
                                 f"{self.config.max_target_len} (EOS included)")
            out.append(row + [self.eos_id])
        length = max(len(r) for r in out)
        ids = torch.full((batch, length), PAD, dtype=torch.long)
        for i, r in enumerate(out):
            ids[i, : len(r)] = torch.tensor(r)
        return ids.to(self.device)

    # -- the network -------------------------------------------------------------------------------------------
    def encode(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Text ids `(B, L)` -> encoder states `(B, L, D)` and the SDPA key mask `(B, 1, 1, L)`."""
        L = ids.shape[1]
        x = self.text_embed(ids) + sinusoidal(torch.arange(L, device=ids.device), self.config.dim).to(
            self.text_embed.weight.dtype)
        key_mask = mask[:, None, None, :]
        for block in self.encoder:
            x = block(x, key_mask)
        return self.encoder_norm(x), key_mask

    def _decoder_inputs(self, tokens: torch.Tensor, start: int) -> torch.Tensor:
        S = tokens.shape[1]
        pos = sinusoidal(torch.arange(start, start + S, device=tokens.device), self.config.dim)
        return self.unit_embed(tokens) + pos.to(self.unit_embed.weight.dtype)

    def forward(self, texts: str | Sequence[str] | torch.Tensor, target: torch.Tensor | Sequence[Sequence[int]],
                label_smoothing: float = 0.0) -> tuple[torch.Tensor, dict[str, float]]:
        """Teacher-forced cross-entropy over every real target (units and each item's EOS; padding ignored).

        texts: strings or ids `(B, L)`; target: units `(B, S)` padded with -1 (a trailing EOS is optional) or
        a list of int lists. Returns (loss, {"accuracy", "eos_accuracy", "tokens"}).
        """
        ids, mask = self.tokenize(texts)
        labels = self.check_targets(target, ids.shape[0])  # (B, S) with EOS, PAD = -1
        B, S = labels.shape
        inputs = torch.cat([torch.full((B, 1), self.bos_id, device=labels.device, dtype=torch.long),
                            labels[:, :-1].clamp(min=0)], dim=1)  # pads become unit 0 but are masked as keys
        real = labels != PAD
        context, context_mask = self.encode(ids, mask)
        keys_real = torch.cat([torch.ones(B, 1, dtype=torch.bool, device=labels.device), real[:, :-1]], dim=1)
        causal = torch.ones(S, S, dtype=torch.bool, device=labels.device).tril()
        self_mask = causal[None, None] & keys_real[:, None, None, :]
        x = self._decoder_inputs(inputs, 0)
        for block in self.decoder:
            kv = block.cross_attn.project_kv(context)
            x = block(x, self_mask, context_kv=kv, context_mask=context_mask)
        logits = self.to_logits(self.decoder_norm(x)).float()
        loss = F.cross_entropy(logits[real], labels[real], label_smoothing=label_smoothing)
        with torch.no_grad():
            pred = logits.argmax(-1)
            is_eos = labels == self.eos_id
            parts = {"accuracy": float((pred[real] == labels[real]).float().mean()),
                     "eos_accuracy": float((pred[is_eos] == self.eos_id).float().mean()),
                     "tokens": float(real.sum())}
        return loss, parts

    # -- generation ----------------------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, source: str | Sequence[str] | torch.Tensor, source_type: str = "text",
                 target_type: str = "speech", *, max_length: int | None = None, temperature: float = 1.0,
                 filter_thres: float = 0.0, generator: torch.Generator | None = None, seed: int | None = None,
                 return_lengths: bool = False):
        """Autoregressive unit generation with a key/value cache, until every item has emitted EOS.

        source: texts or ids `(B, L)`. `source_type="text"`, `target_type="speech"` are the only direction
        (upstream also had speech -> speech). temperature 0 = greedy; `filter_thres` in [0, 1) keeps the top
        (1 - filter_thres) fraction of logits (upstream's top-k filter). `max_length`: cap on units per item
        (default `max_units_per_token` x text tokens + 16, at most `max_target_len - 1`).

        Returns units `(B, S)` int64 padded with -1 (EOS removed); with `return_lengths`, also `(B,)` lengths.
        """
        if source_type != "text" or target_type != "speech":
            raise ConfigError(f"TextToSemantic here goes from text to speech units; got source_type={source_type!r}, "
                              f"target_type={target_type!r}")
        if temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {temperature}")
        if not 0.0 <= filter_thres < 1.0:
            raise ConfigError(f"filter_thres must be in [0, 1), got {filter_thres}")
        ids, mask = self.tokenize(source)
        B, dev = ids.shape[0], ids.device
        cap = self.config.max_target_len - 1
        if max_length is None:
            max_length = int(self.config.max_units_per_token * int(mask.sum(1).max()) + 16)
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
            raise ConfigError(f"max_length must be a positive integer, got {max_length!r}")
        max_length = min(max_length, cap)
        generator = make_generator(seed, generator, device=dev)
        was_training = self.training
        self.eval()
        try:
            context, context_mask = self.encode(ids, mask)
            cross_kv = [block.cross_attn.project_kv(context) for block in self.decoder]
            caches: list[dict] = [{} for _ in self.decoder]
            token = torch.full((B, 1), self.bos_id, dtype=torch.long, device=dev)
            out = torch.full((B, max_length), PAD, dtype=torch.long, device=dev)
            done = torch.zeros(B, dtype=torch.bool, device=dev)
            lengths = torch.full((B,), max_length, dtype=torch.long, device=dev)
            for step in range(max_length):
                x = self._decoder_inputs(token, step)
                for block, cache, kv in zip(self.decoder, caches, cross_kv, strict=True):
                    x = block(x, None, cache=cache, context_kv=kv, context_mask=context_mask)
                logits = self.to_logits(self.decoder_norm(x))[:, -1].float()
                nxt = self._sample(logits, temperature, filter_thres, generator)
                ended = (nxt == self.eos_id) & ~done
                lengths[ended] = step
                done |= ended
                out[:, step] = torch.where(done, torch.full_like(nxt, PAD), nxt)
                if bool(done.all()):
                    out = out[:, : step + 1]
                    break
                token = nxt.clamp(max=self.eos_id)[:, None]
        finally:
            self.train(was_training)
        keep = int(lengths.max()) if B else 0
        out = out[:, : max(keep, 1)]
        return (out, lengths) if return_lengths else out

    @staticmethod
    def _sample(logits: torch.Tensor, temperature: float, filter_thres: float,
                generator: torch.Generator | None) -> torch.Tensor:
        if temperature == 0:
            return logits.argmax(-1)
        if filter_thres > 0:
            logits = keep_top_k(logits, max(1, int(math.ceil((1 - filter_thres) * logits.shape[-1]))))
        probs = (logits / temperature).softmax(-1)
        return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


__all__ = ["PAD", "TextToSemantic", "TextToSemanticConfig"]

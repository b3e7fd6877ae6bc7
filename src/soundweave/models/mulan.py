"""MuLaN: music audio and text in one embedding space (Huang et al. 2022, "MuLan: A Joint Embedding of
Music Audio and Natural Language", arXiv 2208.12415), and `MuLaNEmbedQuantizer`, which turns a MuLaN
embedding into conditioning tokens for MusicLM (Agostinelli et al. 2023, arXiv 2301.11325).

    audio (B, T) @ sample_rate --log-mel--> (B, F, frames) --16x16 patches--> AST --mean pool--> (B, dim_a)
    text  str / ids (B, L) --------------------------------> text tower --pool--------------> (B, dim_t)
    each --Linear--> (B, dim_latent) --l2 normalise--> one space; trained with a contrastive loss

Towers:
- `AudioSpectrogramTransformer` (AST): log-mel front end (soundweave.audio.MelSpectrogram), 2-D patch
  embedding, fixed 2-D sin-cos positions (defined for any grid, so lengths never seen in training work),
  SpecAugment (time stretch, frequency and time masks) and patch dropout in training mode only, padding
  masks for variable-length audio, SDPA attention, masked mean pooling.
- `TextTransformer`: a transformer trained from scratch over our own tokenizer (byte-level by default, or
  a BPE trained on captions; no downloaded vocabulary), rotary positions, a CLS token.
- `PretrainedTextTransformer`: any Hugging Face text encoder (hub id or folder; default the offline
  all-MiniLM-L6-v2), optionally frozen, mean- or CLS-pooled. Saved folders hold its HF config (in
  config.json) and tokenizer files (in `text_tokenizer/`), so loading never needs the hub.

Input policies (tested): silence and clipped noise embed normally (finite, unit norm); audio shorter than
one patch (`min_samples`) raises ShapeError; audio longer than `max_seconds` is cropped to its start by
the AST and `MuLaN.forward`, while `get_audio_latents` (default `long_audio="window"`) embeds
consecutive `max_seconds` windows and averages them; empty captions raise ShapeError; captions longer
than the tower's `max_seq_len` tokens are truncated (the start is kept).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Self

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..audio.io import check_audio, check_sample_rate, resample
from ..audio.mel import MelConfig, MelSpectrogram
from ..errors import CheckpointError, ConfigError, ShapeError
from ..nn.attention import Transformer
from ..nn.contrastive import LOSSES, ContrastiveLoss
from .base import CONFIG_NAME, WEIGHTS_NAME, PretrainedModel, resolve_pretrained
from .tokenizers import PAD_ID, ByteTokenizer, CaptionTokenizer, check_texts, tokenizer_from_config

TOKENIZER_DIR = "text_tokenizer"


def l2norm(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x, dim=-1)


def sincos_2d(h: int, w: int, dim: int, device=None, temperature: float = 10000.0) -> torch.Tensor:
    """Fixed 2-D sin-cos positions for an (h, w) grid -> (h * w, dim). Half the channels encode the row
    (frequency patch), half the column (time patch); defined for any w, so it extrapolates in time."""
    if dim % 4:
        raise ConfigError(f"2-D sin-cos positions need dim divisible by 4, got {dim}")
    y, x = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
    omega = 1.0 / temperature ** (
        torch.arange(dim // 4, device=device, dtype=torch.float32) / (dim // 4 - 1 or 1)
    )
    y = y.flatten().float()[:, None] * omega[None, :]
    x = x.flatten().float()[:, None] * omega[None, :]
    return torch.cat((x.sin(), x.cos(), y.sin(), y.cos()), dim=1)


def _random_bands(batch: int, size: int, max_width: int, count: int, device) -> torch.Tensor:
    """`count` random bands of width U{0..max_width} per row -> bool (batch, size), True = masked."""
    out = torch.zeros(batch, size, dtype=torch.bool, device=device)
    if max_width <= 0 or count <= 0 or size <= 0:
        return out
    ar = torch.arange(size, device=device)[None, :]
    for _ in range(count):
        width = torch.randint(0, min(max_width, size) + 1, (batch, 1), device=device)
        start = (torch.rand(batch, 1, device=device) * (size - width + 1)).long()
        out |= (ar >= start) & (ar < start + width)
    return out


def _as_batch(wavs, mask):
    wavs = check_audio(wavs, "wavs")
    if wavs.ndim == 1:
        wavs = wavs[None]
        mask = mask[None] if mask is not None and mask.ndim == 1 else mask
    if mask is not None:
        if not isinstance(mask, torch.Tensor) or mask.shape != wavs.shape:
            raise ShapeError(
                f"mask must be a bool tensor shaped like wavs {tuple(wavs.shape)}, got "
                f"{None if not isinstance(mask, torch.Tensor) else tuple(mask.shape)}"
            )
        mask = mask.bool()
    return wavs, mask


def _resample_batch(wavs, mask, orig_sr: int, target_sr: int):
    """Resample (B, T) audio at the edge; the mask follows the scaled valid lengths."""
    out = resample(wavs.detach(), orig_sr, target_sr).to(wavs.device)
    if mask is None:
        return out, None
    lengths = (mask.sum(-1).float() * target_sr / orig_sr).round().long()
    return out, torch.arange(out.shape[-1], device=out.device)[None, :] < lengths[:, None]


# ------------------------------------------------------------------------------------------------
# Audio tower
# ------------------------------------------------------------------------------------------------


@dataclass
class ASTConfig:
    dim: int = 512
    depth: int = 6
    heads: int = 8
    dim_head: int = 64
    ff_mult: float = 4.0
    dropout: float = 0.0
    sample_rate: int = 16000
    spec_n_fft: int = 512
    spec_win_length: int | None = 400
    spec_hop_length: int | None = None  # None = win_length // 2
    n_mels: int | None = 64
    patch_size: tuple[int, int] = (16, 16)  # (mel bins, frames)
    spec_mean: float = -5.0  # log-mel normalisation: (log_mel - mean) / std
    spec_std: float = 4.0
    spec_aug_stretch_factor: float | None = 0.8  # time stretch rate ~ U[f, 1/f] in training; None = off
    spec_aug_freq_mask: int = 8  # max width (mel bins) of each frequency mask
    spec_aug_time_mask: int = 20  # max width (frames) of each time mask
    spec_aug_num_masks: int = 2
    patch_dropout: float = 0.25  # fraction of patches dropped in training (also a speed-up)
    max_seconds: float = 10.0

    def __post_init__(self):
        self.patch_size = tuple(int(p) for p in self.patch_size)
        if self.spec_win_length is not None and self.spec_win_length > self.spec_n_fft:
            raise ConfigError(f"spec_win_length {self.spec_win_length} > spec_n_fft {self.spec_n_fft}")
        if self.spec_hop_length is None:
            self.spec_hop_length = max(1, (self.spec_win_length or self.spec_n_fft) // 2)
        if self.n_mels is None:
            self.n_mels = min(64, self.spec_n_fft // 4)
        if len(self.patch_size) != 2 or min(self.patch_size) < 1:
            raise ConfigError(
                f"patch_size must be two positive ints (mel bins, frames), got {self.patch_size}"
            )
        if self.dim % 4:
            raise ConfigError(f"AST dim must be divisible by 4 (2-D sin-cos positions), got {self.dim}")
        if not 0.0 <= self.patch_dropout < 1.0:
            raise ConfigError(f"patch_dropout must be in [0, 1), got {self.patch_dropout}")
        if self.spec_aug_stretch_factor is not None and not 0 < self.spec_aug_stretch_factor <= 1:
            raise ConfigError(
                f"spec_aug_stretch_factor must be in (0, 1] or None, got {self.spec_aug_stretch_factor}"
            )
        if self.max_seconds <= 0:
            raise ConfigError(f"max_seconds must be positive, got {self.max_seconds}")
        check_sample_rate(self.sample_rate)


class AudioSpectrogramTransformer(PretrainedModel):
    """Audio Spectrogram Transformer (Gong et al. 2021, arXiv 2104.01778) over log-mel patches.

    forward(wavs (B, T) or (T,), mask=(B, T) bool keep, sample_rate=None) -> pooled (B, dim).
    `sample_rate` (default: the config's) is resampled to the model's rate at the edge.
    """

    def __init__(self, dim: int = 512, depth: int = 6, heads: int = 8, dim_head: int = 64, **kwargs):
        super().__init__()
        self.config = c = ASTConfig(dim=dim, depth=depth, heads=heads, dim_head=dim_head, **kwargs)
        self.dim = c.dim
        self.mel = MelSpectrogram(
            MelConfig(
                sample_rate=c.sample_rate,
                n_fft=c.spec_n_fft,
                hop_length=c.spec_hop_length,
                win_length=c.spec_win_length,
                n_mels=c.n_mels,
            )
        )
        pf, pt = c.patch_size
        self.to_patch = nn.Sequential(nn.Linear(pf * pt, c.dim), nn.LayerNorm(c.dim))
        self.transformer = Transformer(c.dim, c.depth, c.heads, c.dim_head, c.ff_mult, c.dropout)

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def min_samples(self) -> int:
        """The shortest audio that fills one patch of frames."""
        return (self.config.patch_size[1] - 1) * self.config.spec_hop_length

    @property
    def floor_value(self) -> float:
        """The normalised log-mel of silence (also used for padding)."""
        return (math.log(self.mel.config.log_floor) - self.config.spec_mean) / self.config.spec_std

    @property
    def max_samples(self) -> int:
        return int(self.config.max_seconds * self.config.sample_rate)

    def prepare(self, wavs, mask=None, sample_rate=None):
        """Validate, resample and crop: -> (wavs (B, T), mask (B, T) | None) at the model's rate."""
        wavs, mask = _as_batch(wavs, mask)
        sr = check_sample_rate(sample_rate) if sample_rate is not None else self.sample_rate
        if sr != self.sample_rate:
            wavs, mask = _resample_batch(wavs, mask, sr, self.sample_rate)
        if wavs.shape[-1] > self.max_samples:  # over-long: keep the start (MuLaN.get_audio_latents windows)
            wavs = wavs[..., : self.max_samples]
            mask = mask[..., : self.max_samples] if mask is not None else None
        lengths = mask.sum(-1) if mask is not None else torch.full((wavs.shape[0],), wavs.shape[-1])
        short = (lengths < self.min_samples).nonzero().flatten().tolist()
        if short:
            raise ShapeError(
                f"audio item(s) {short} have {lengths[short[0]].item()} samples, shorter than one patch "
                f"({self.min_samples} samples = {self.min_samples / self.sample_rate:.3f} s at "
                f"{self.sample_rate} Hz); pad them or drop them"
            )
        return wavs, mask

    def spectrogram(self, wavs: torch.Tensor, mask: torch.Tensor | None = None):
        """(B, T) -> normalised log-mel (B, n_mels, frames) and the frame mask (B, frames)."""
        c = self.config
        with torch.autocast(device_type=wavs.device.type, enabled=False):
            mel = self.mel(wavs.float())
        mel = (mel - c.spec_mean) / c.spec_std
        frames = mel.shape[-1]
        if mask is None:
            frame_mask = torch.ones(wavs.shape[0], frames, dtype=torch.bool, device=wavs.device)
        else:
            centres = (torch.arange(frames, device=wavs.device) * c.spec_hop_length).clamp(
                max=wavs.shape[-1] - 1
            )
            frame_mask = mask[:, centres]
            # padding frames carry nothing: same values as the patch-grid padding
            mel = mel.masked_fill(~frame_mask[:, None, :], self.floor_value)
        return mel, frame_mask

    def spec_augment(self, mel: torch.Tensor, frame_mask: torch.Tensor):
        """Training-time SpecAugment: time stretch (one rate per batch), frequency and time masks
        (per item)."""
        c = self.config
        if c.spec_aug_stretch_factor is not None and c.spec_aug_stretch_factor < 1.0:
            lo, hi = math.log(c.spec_aug_stretch_factor), -math.log(c.spec_aug_stretch_factor)
            rate = math.exp(lo + (hi - lo) * float(torch.rand(())))
            frames = max(c.patch_size[1], round(mel.shape[-1] / rate))
            mel = F.interpolate(mel, size=frames, mode="linear", align_corners=False)
            frame_mask = F.interpolate(frame_mask[:, None].float(), size=frames, mode="nearest")[:, 0] > 0.5
        b, nf, nt = mel.shape
        fmask = _random_bands(b, nf, c.spec_aug_freq_mask, c.spec_aug_num_masks, mel.device)
        tmask = _random_bands(b, nt, c.spec_aug_time_mask, c.spec_aug_num_masks, mel.device)
        mel = mel.masked_fill(fmask[:, :, None] | tmask[:, None, :], 0.0)
        return mel, frame_mask

    def patchify(self, mel: torch.Tensor, frame_mask: torch.Tensor):
        """(B, F, frames) -> tokens (B, h*w, dim) with positions, and the patch mask (B, h*w)."""
        pf, pt = self.config.patch_size
        floor = self.floor_value
        pad_f = (-mel.shape[1]) % pf
        pad_t = (-mel.shape[2]) % pt
        if pad_f or pad_t:
            mel = F.pad(mel, (0, pad_t, 0, pad_f), value=floor)
            frame_mask = F.pad(frame_mask, (0, pad_t), value=False)
        h, w = mel.shape[1] // pf, mel.shape[2] // pt
        patches = rearrange(mel, "b (h p1) (w p2) -> b (h w) (p1 p2)", p1=pf, p2=pt)
        tokens = self.to_patch(patches) + sincos_2d(h, w, self.dim, device=mel.device).to(patches.dtype)
        time_valid = rearrange(frame_mask, "b (w p2) -> b w p2", p2=pt).any(-1)
        patch_mask = time_valid[:, None, :].expand(-1, h, -1).reshape(mel.shape[0], h * w)
        return tokens, patch_mask

    def drop_patches(self, tokens: torch.Tensor, patch_mask: torch.Tensor):
        """Keep a random (1 - patch_dropout) share of the patches (real patches first)."""
        n = tokens.shape[1]
        keep = max(1, int(n * (1.0 - self.config.patch_dropout)))
        if keep >= n:
            return tokens, patch_mask
        scores = torch.rand(patch_mask.shape, device=tokens.device) + patch_mask.float()
        idx = scores.topk(keep, dim=1).indices
        tokens = tokens.gather(1, idx[..., None].expand(-1, -1, tokens.shape[-1]))
        return tokens, patch_mask.gather(1, idx)

    def forward(
        self, wavs: torch.Tensor, mask: torch.Tensor | None = None, sample_rate: int | None = None
    ) -> torch.Tensor:
        wavs, mask = self.prepare(wavs, mask, sample_rate)
        wavs = wavs.to(self.to_patch[0].weight.device)
        mask = mask.to(wavs.device) if mask is not None else None
        mel, frame_mask = self.spectrogram(wavs, mask)
        if self.training:
            mel, frame_mask = self.spec_augment(mel, frame_mask)
        tokens, patch_mask = self.patchify(mel, frame_mask)
        if self.training and self.config.patch_dropout > 0:
            tokens, patch_mask = self.drop_patches(tokens, patch_mask)
        x = self.transformer(tokens, mask=patch_mask)
        weights = patch_mask.to(x.dtype)[..., None]
        return (x * weights).sum(1) / weights.sum(1).clamp_min(1.0)


# ------------------------------------------------------------------------------------------------
# Text towers
# ------------------------------------------------------------------------------------------------


@dataclass
class TextTransformerConfig:
    dim: int = 512
    depth: int = 6
    heads: int = 8
    dim_head: int = 64
    num_tokens: int = 20000
    max_seq_len: int = 512
    ff_mult: float = 4.0
    dropout: float = 0.0
    tokenizer: dict | None = None  # {"type": "bytes"} (default) or {"type": "bpe", "json": ...}


class TextTransformer(PretrainedModel):
    """A text transformer trained from scratch: token embedding, rotary positions, a learned CLS token.

    forward(ids (B, L) int64, mask=(B, L) keep; default ids != 0) -> CLS output (B, dim).
    `embed_texts(list[str])` tokenizes with the tower's own tokenizer first. Sequences longer than
    `max_seq_len` are truncated. Ids must lie in [0, num_tokens); 0 is padding.
    """

    def __init__(
        self,
        dim: int = 512,
        depth: int = 6,
        heads: int = 8,
        dim_head: int = 64,
        num_tokens: int = 20000,
        max_seq_len: int = 512,
        ff_mult: float = 4.0,
        dropout: float = 0.0,
        tokenizer: ByteTokenizer | CaptionTokenizer | dict | None = None,
    ):
        super().__init__()
        tok = (
            tokenizer
            if isinstance(tokenizer, (ByteTokenizer, CaptionTokenizer))
            else tokenizer_from_config(tokenizer)
        )
        if tok.vocab_size > num_tokens:
            raise ConfigError(f"the tokenizer has {tok.vocab_size} ids but num_tokens is {num_tokens}")
        if max_seq_len < 3:
            raise ConfigError(f"max_seq_len must be >= 3, got {max_seq_len}")
        self.tokenizer = tok
        self.config = TextTransformerConfig(
            dim, depth, heads, dim_head, num_tokens, max_seq_len, ff_mult, dropout, tok.to_config()
        )
        self.dim = dim
        self.token_emb = nn.Embedding(num_tokens, dim)
        self.cls = nn.Parameter(torch.randn(dim) * 0.02)
        self.transformer = Transformer(dim, depth, heads, dim_head, ff_mult, dropout, rotary=True)

    @property
    def max_length(self) -> int:
        return self.config.max_seq_len

    def tokenize(self, texts) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = self.tokenizer(texts, max_length=self.config.max_seq_len - 1)  # + the CLS token
        return ids.to(self.token_emb.weight.device), mask.to(self.token_emb.weight.device)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if (
            not isinstance(ids, torch.Tensor)
            or ids.ndim != 2
            or ids.dtype.is_floating_point
            or ids.dtype == torch.bool
        ):
            raise ShapeError(
                f"token ids must be an integer tensor (B, L), got "
                f"{tuple(ids.shape) if isinstance(ids, torch.Tensor) else type(ids).__name__}"
            )
        if ids.numel() and (ids.min() < 0 or ids.max() >= self.config.num_tokens):
            raise ShapeError(
                f"token ids must lie in [0, {self.config.num_tokens}), got [{int(ids.min())}, "
                f"{int(ids.max())}]"
            )
        ids = ids[:, : self.config.max_seq_len - 1].to(self.token_emb.weight.device)
        mask = (ids != PAD_ID) if mask is None else mask[:, : ids.shape[1]].to(ids.device).bool()
        x = self.token_emb(ids)
        x = torch.cat((self.cls.to(x.dtype).expand(x.shape[0], 1, -1), x), dim=1)
        mask = F.pad(mask, (1, 0), value=True)
        return self.transformer(x, mask=mask)[:, 0]

    def embed_texts(self, texts) -> torch.Tensor:
        return self(*self.tokenize(texts))

    def get_config(self) -> dict[str, Any]:
        return asdict(self.config)


class PretrainedTextTransformer(PretrainedModel):
    """A Hugging Face text encoder as the text tower (`AutoModel` + `AutoTokenizer`).

    name_or_path: hub id, local folder, or 'minilm' (the offline all-MiniLM-L6-v2; the default).
    freeze: keep the encoder's weights fixed (and in eval mode); only MuLaN's projection trains.
    pooling: 'mean' over real tokens (sentence-transformers style) or 'cls'.
    forward(ids (B, L), mask=(B, L)) -> (B, hidden); `embed_texts(list[str])` tokenizes first.
    """

    def __init__(
        self,
        name_or_path: str = "minilm",
        freeze: bool = False,
        pooling: str = "mean",
        max_length: int = 256,
        hf_config: dict | None = None,
        _folder: str | None = None,
    ):
        super().__init__()
        from transformers import AutoConfig, AutoModel

        from .text_encoders import resolve_text_encoder

        if pooling not in ("mean", "cls"):
            raise ConfigError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
        self.source, self.freeze, self.pooling, self.max_length = (
            str(name_or_path),
            freeze,
            pooling,
            max_length,
        )
        self._folder = _folder
        self._tokenizer = None
        if hf_config is not None:  # rebuilt from our own folder: weights come from model.safetensors
            cfg = dict(hf_config)
            model_type = cfg.pop("model_type", None)
            if model_type is None:
                raise CheckpointError("the stored text encoder config has no model_type")
            self.encoder = AutoModel.from_config(AutoConfig.for_model(model_type, **cfg))
        else:
            path = resolve_text_encoder(self.source)
            try:
                self.encoder = AutoModel.from_pretrained(path)
            except OSError as exc:
                raise CheckpointError(f"could not load the text encoder {self.source!r}: {exc}") from exc
            self._tokenizer_path = path
        self.dim = self.encoder.config.hidden_size
        if freeze:
            self.encoder.requires_grad_(False)
            self.encoder.eval()
        self.config = {
            "name_or_path": self.source,
            "freeze": freeze,
            "pooling": pooling,
            "max_length": max_length,
        }

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze:
            self.encoder.eval()
        return self

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            from .text_encoders import resolve_text_encoder

            candidates = []
            if self._folder is not None:
                candidates.append(Path(self._folder) / TOKENIZER_DIR)
            if getattr(self, "_tokenizer_path", None):
                candidates.append(self._tokenizer_path)
            for cand in candidates:
                if Path(cand).is_dir():
                    self._tokenizer = AutoTokenizer.from_pretrained(str(cand))
                    break
            else:
                try:
                    self._tokenizer = AutoTokenizer.from_pretrained(resolve_text_encoder(self.source))
                except Exception as exc:
                    raise CheckpointError(
                        f"no tokenizer for the text encoder {self.source!r}: load the model with "
                        f"MuLaN/PretrainedTextTransformer.from_pretrained(folder) so {TOKENIZER_DIR}/ "
                        "is used "
                        f"({type(exc).__name__}: {exc})"
                    ) from exc
        return self._tokenizer

    def tokenize(self, texts) -> tuple[torch.Tensor, torch.Tensor]:
        texts = check_texts(texts)
        enc = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        device = next(self.encoder.parameters()).device
        return enc["input_ids"].to(device), enc["attention_mask"].bool().to(device)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if not isinstance(ids, torch.Tensor) or ids.ndim != 2 or ids.dtype.is_floating_point:
            raise ShapeError("token ids must be an integer tensor (B, L)")
        vocab = self.encoder.config.vocab_size
        if ids.numel() and (ids.min() < 0 or ids.max() >= vocab):
            raise ShapeError(f"token ids must lie in [0, {vocab}) for {self.source!r}")
        device = next(self.encoder.parameters()).device
        ids = ids[:, : self.max_length].to(device)
        pad = getattr(self.encoder.config, "pad_token_id", 0) or 0
        mask = (ids != pad) if mask is None else mask[:, : ids.shape[1]].to(device).bool()
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze):
            hidden = self.encoder(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]
        weights = mask.to(hidden.dtype)[..., None]
        return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)

    def embed_texts(self, texts) -> torch.Tensor:
        return self(*self.tokenize(texts))

    # persistence: the HF config rides in config.json; tokenizer files go to text_tokenizer/
    def get_config(self) -> dict[str, Any]:
        hf = self.encoder.config.to_dict()
        hf.pop("transformers_version", None)
        hf.pop("_name_or_path", None)
        return {**self.config, "hf_config": hf}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Self:
        return cls(**config)

    def save_assets(self, folder: str | os.PathLike) -> None:
        self.tokenizer.save_pretrained(str(Path(folder) / TOKENIZER_DIR))

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        folder = super().save_pretrained(folder)
        self.save_assets(folder)
        return folder

    @classmethod
    def from_pretrained(cls, path_or_id, **kwargs) -> Self:
        return _from_pretrained_with_assets(cls, path_or_id, **kwargs)


def _from_pretrained_with_assets(cls, path_or_id, *, revision=None, **kwargs):
    folder = resolve_pretrained(
        path_or_id, revision=revision, allow_patterns=[CONFIG_NAME, WEIGHTS_NAME, f"{TOKENIZER_DIR}/*"]
    )
    return PretrainedModel.from_pretrained.__func__(cls, folder, _folder=str(folder), **kwargs)


TEXT_TOWERS = {"TextTransformer": TextTransformer, "PretrainedTextTransformer": PretrainedTextTransformer}


def _text_tower_from_config(config: dict[str, Any], folder: str | None):
    config = dict(config)
    name = config.pop("_class", "TextTransformer")
    if name not in TEXT_TOWERS:
        raise CheckpointError(f"unknown text tower {name!r}; expected one of {sorted(TEXT_TOWERS)}")
    if name == "PretrainedTextTransformer":
        config["_folder"] = folder
    return TEXT_TOWERS[name].from_config(config)


# ------------------------------------------------------------------------------------------------
# MuLaN
# ------------------------------------------------------------------------------------------------


class MuLaN(PretrainedModel):
    """Two towers projected to one l2-normalised `dim_latent` space, trained contrastively.

    forward(wavs, texts=None, raw_texts=None, wav_mask=None, sample_rate=None) -> scalar loss, with the
    other items of the batch as negatives. Loss: 'infonce' (symmetric, default), 'decoupled' (DCL) or
    'sigmoid' (SigLIP); the temperature (and SigLIP bias) are learned.
    get_audio_latents(wavs, sample_rate=None) -> (B, dim_latent); get_text_latents(texts | raw_texts).
    """

    def __init__(
        self,
        audio_transformer: AudioSpectrogramTransformer,
        text_transformer: nn.Module,
        dim_latent: int = 128,
        loss: str = "infonce",
        temperature_init: float = 10.0,
        sigmoid_bias_init: float = -10.0,
    ):
        super().__init__()
        if loss not in LOSSES:
            raise ConfigError(f"loss must be one of {LOSSES}, got {loss!r}")
        if not isinstance(audio_transformer, AudioSpectrogramTransformer):
            raise ConfigError("audio_transformer must be an AudioSpectrogramTransformer")
        if not isinstance(text_transformer, (TextTransformer, PretrainedTextTransformer)):
            raise ConfigError("text_transformer must be a TextTransformer or PretrainedTextTransformer")
        self.audio = audio_transformer
        self.text = text_transformer
        self.dim_latent = dim_latent
        self.audio_to_latents = nn.Linear(self.audio.dim, dim_latent)
        self.text_to_latents = nn.Linear(self.text.dim, dim_latent)
        self.contrastive = ContrastiveLoss(
            loss, temperature_init=temperature_init, bias_init=sigmoid_bias_init
        )
        self.config = {
            "dim_latent": dim_latent,
            "loss": loss,
            "temperature_init": temperature_init,
            "sigmoid_bias_init": sigmoid_bias_init,
        }

    @property
    def sample_rate(self) -> int:
        return self.audio.sample_rate

    @property
    def device(self) -> torch.device:
        return self.audio_to_latents.weight.device

    # -- audio ------------------------------------------------------------------------------------
    def get_audio_latents(
        self,
        wavs: torch.Tensor,
        sample_rate: int | None = None,
        mask: torch.Tensor | None = None,
        long_audio: str = "window",
    ) -> torch.Tensor:
        """(B, T) or (T,) audio -> unit-norm (B, dim_latent). Audio longer than the AST's `max_seconds` is
        split into consecutive windows whose latents are averaged (`long_audio='window'`) or cropped to its
        start (`'crop'`); a last window shorter than one patch is ignored."""
        if long_audio not in ("window", "crop"):
            raise ConfigError(f"long_audio must be 'window' or 'crop', got {long_audio!r}")
        wavs, mask = _as_batch(wavs, mask)
        sr = check_sample_rate(sample_rate) if sample_rate is not None else self.sample_rate
        if sr != self.sample_rate:
            wavs, mask = _resample_batch(wavs, mask, sr, self.sample_rate)
        size = self.audio.max_samples
        if long_audio == "crop" or wavs.shape[-1] <= size:
            return l2norm(self.audio_to_latents(self.audio(wavs, mask=mask)))
        if mask is None:
            mask = torch.ones_like(wavs, dtype=torch.bool)
        self.audio.prepare(wavs[:, :size], mask[:, :size])  # every item must fill one patch in window 0
        total = torch.zeros(wavs.shape[0], self.dim_latent, device=self.device)
        for start in range(0, wavs.shape[-1], size):
            w, m = wavs[:, start : start + size], mask[:, start : start + size]
            use = (m.sum(-1) >= self.audio.min_samples).nonzero().flatten()
            if use.numel() == 0:
                continue
            latents = l2norm(self.audio_to_latents(self.audio(w[use], mask=m[use])))
            total = total.index_add(0, use.to(self.device), latents.float())
        return l2norm(total)

    # -- text -------------------------------------------------------------------------------------
    def text_features(self, texts=None, raw_texts=None) -> torch.Tensor:
        """The text tower's pooled output (before the latent projection)."""
        if isinstance(texts, (str, list, tuple)):
            texts, raw_texts = None, texts
        if texts is not None:
            return self.text(texts)
        if raw_texts is None:
            raise ShapeError("give token ids (texts=) or strings (raw_texts=)")
        return self.text.embed_texts(raw_texts)

    def get_text_latents(
        self,
        texts: torch.Tensor | None = None,
        raw_texts: str | list[str] | None = None,
        text_features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Token ids `(B, L)` (texts=) or strings (raw_texts=) -> unit-norm (B, dim_latent).
        `text_features` (the tower's pooled output, e.g. cached for a frozen tower) skips the tower."""
        features = text_features if text_features is not None else self.text_features(texts, raw_texts)
        return l2norm(self.text_to_latents(features.to(self.device)))

    # -- training ---------------------------------------------------------------------------------
    def forward(
        self,
        wavs: torch.Tensor,
        texts: torch.Tensor | None = None,
        raw_texts=None,
        *,
        wav_mask: torch.Tensor | None = None,
        sample_rate: int | None = None,
        text_features: torch.Tensor | None = None,
        return_similarities: bool = False,
        return_latents: bool = False,
    ):
        """Contrastive loss of a batch of (audio, text) pairs; `return_similarities` gives the (B, B) cosine
        matrix (text rows, audio columns) instead; `return_latents` gives (audio_latents, text_latents)."""
        audio_latents = self.get_audio_latents(
            wavs, sample_rate=sample_rate, mask=wav_mask, long_audio="crop"
        )
        text_latents = self.get_text_latents(texts, raw_texts, text_features=text_features)
        if audio_latents.shape[0] != text_latents.shape[0]:
            raise ShapeError(f"{audio_latents.shape[0]} audio clips but {text_latents.shape[0]} texts")
        if return_latents:
            return audio_latents, text_latents
        if return_similarities:
            return text_latents @ audio_latents.t()
        return self.contrastive(text_latents, audio_latents)

    @torch.no_grad()
    def score(self, wavs: torch.Tensor, raw_texts, sample_rate: int | None = None) -> torch.Tensor:
        """Cosine similarity of each text with each clip: (num_texts, num_clips)."""
        a = self.get_audio_latents(wavs, sample_rate=sample_rate)
        t = self.get_text_latents(raw_texts=raw_texts)
        return t @ a.t()

    # -- persistence ------------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        return {
            **self.config,
            "audio_transformer": self.audio.get_config(),
            "text_transformer": {"_class": type(self.text).__name__, **self.text.get_config()},
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Self:
        config = dict(config)
        folder = config.pop("_folder", None)
        audio = AudioSpectrogramTransformer.from_config(config.pop("audio_transformer"))
        text = _text_tower_from_config(config.pop("text_transformer"), folder)
        return cls(audio, text, **config)

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        folder = super().save_pretrained(folder)
        if isinstance(self.text, PretrainedTextTransformer):
            self.text.save_assets(folder)
        return folder

    @classmethod
    def from_pretrained(cls, path_or_id, **kwargs) -> Self:
        return _from_pretrained_with_assets(cls, path_or_id, **kwargs)


# ------------------------------------------------------------------------------------------------
# Conditioning tokens
# ------------------------------------------------------------------------------------------------


class MuLaNEmbedQuantizer(PretrainedModel):
    """Residual VQ of MuLaN latents -> conditioning tokens, one learned projection per namespace.

    The frozen MuLaN embeds audio (wavs=) or text (texts= ids / raw_texts= strings); a ResidualVQ
    (vector-quantize-pytorch; `rq_num_quantizers` x `codebook_size`, EMA codebooks, k-means init) turns
    the latent into `q` code ids; namespace `ns` maps level k's code vector through its own
    `Linear(dim_latent, conditioning_dims[ns])` plus a learned level embedding:
    conds `(B, q, conditioning_dims[ns])`. The codebooks learn (EMA) whenever the module is called in
    training mode (or with `fit_codebooks`); in eval mode they are fixed.
    """

    def __init__(
        self,
        mulan: MuLaN,
        conditioning_dims: tuple[int, ...] | list[int],
        rq_num_quantizers: int = 8,
        codebook_size: int = 1024,
        namespaces: tuple[str, ...] | list[str] = ("semantic", "coarse", "acoustic"),
        rq_ema_decay: float = 0.9,
        kmeans_init: bool = True,
        threshold_ema_dead_code: int = 2,
    ):
        super().__init__()
        from vector_quantize_pytorch import ResidualVQ

        namespaces, conditioning_dims = tuple(namespaces), tuple(int(d) for d in conditioning_dims)
        if not isinstance(mulan, MuLaN):
            raise ConfigError("mulan must be a MuLaN")
        if len(namespaces) != len(conditioning_dims) or not namespaces:
            raise ConfigError(
                f"need one conditioning dim per namespace, got {len(conditioning_dims)} dims for "
                f"namespaces {namespaces}"
            )
        if len(set(namespaces)) != len(namespaces):
            raise ConfigError(f"namespaces must be unique, got {namespaces}")
        if rq_num_quantizers < 1 or codebook_size < 2:
            raise ConfigError("rq_num_quantizers must be >= 1 and codebook_size >= 2")
        self.mulan = mulan
        self.mulan.requires_grad_(False)
        self.mulan.eval()
        dim = mulan.dim_latent
        self.rq = ResidualVQ(
            dim=dim,
            num_quantizers=rq_num_quantizers,
            codebook_size=codebook_size,
            decay=rq_ema_decay,
            kmeans_init=kmeans_init,
            kmeans_iters=10,
            threshold_ema_dead_code=threshold_ema_dead_code,
            commitment_weight=0.0,
        )
        self.namespaces = namespaces
        self.projections = nn.ModuleDict(
            {ns: nn.Linear(dim, d) for ns, d in zip(namespaces, conditioning_dims, strict=True)}
        )
        self.level_embeds = nn.ParameterDict(
            {
                ns: nn.Parameter(torch.randn(rq_num_quantizers, d) * 0.02)
                for ns, d in zip(namespaces, conditioning_dims, strict=True)
            }
        )
        self.config = {
            "conditioning_dims": list(conditioning_dims),
            "rq_num_quantizers": rq_num_quantizers,
            "codebook_size": codebook_size,
            "namespaces": list(namespaces),
            "rq_ema_decay": rq_ema_decay,
            "kmeans_init": kmeans_init,
            "threshold_ema_dead_code": threshold_ema_dead_code,
        }

    @property
    def num_quantizers(self) -> int:
        return self.config["rq_num_quantizers"]

    def train(self, mode: bool = True):
        super().train(mode)
        self.mulan.eval()  # MuLaN stays frozen: no SpecAugment, no dropout
        return self

    @torch.no_grad()
    def latents(self, wavs=None, texts=None, raw_texts=None, sample_rate=None, wav_mask=None) -> torch.Tensor:
        if (wavs is None) == (texts is None and raw_texts is None):
            raise ShapeError("give exactly one of wavs= or texts= / raw_texts=")
        if wavs is not None:
            return self.mulan.get_audio_latents(wavs, sample_rate=sample_rate, mask=wav_mask)
        return self.mulan.get_text_latents(texts, raw_texts)

    def quantize_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, dim_latent) -> code ids (B, q) (updates the codebooks in training mode)."""
        _, ids, _ = self.rq(latents.float()[:, None, :])
        return ids[:, 0]

    def get_embed_ids(
        self, wavs=None, texts=None, raw_texts=None, sample_rate=None, wav_mask=None
    ) -> torch.Tensor:
        return self.quantize_latents(self.latents(wavs, texts, raw_texts, sample_rate, wav_mask))

    def conds_from_ids(self, ids: torch.Tensor, namespace: str | None = None) -> torch.Tensor:
        """Code ids (B, q) -> conditioning embeddings (B, q, conditioning_dims[namespace])."""
        namespace = self._namespace(namespace)
        q = self.num_quantizers
        if ids.ndim != 2 or ids.shape[1] != q:
            raise ShapeError(f"code ids must be (B, {q}), got {tuple(ids.shape)}")
        if ids.min() < 0 or ids.max() >= self.config["codebook_size"]:
            raise ShapeError(f"code ids must lie in [0, {self.config['codebook_size']})")
        codebooks = self.rq.codebooks  # (q, codebook_size, dim_latent)
        codes = codebooks[torch.arange(q, device=ids.device)[None, :], ids]  # (B, q, dim_latent)
        return self.projections[namespace](codes) + self.level_embeds[namespace]

    def _namespace(self, namespace: str | None) -> str:
        if namespace is None:
            if len(self.namespaces) > 1:
                raise ConfigError(f"say which namespace: one of {self.namespaces}")
            return self.namespaces[0]
        if namespace not in self.projections:
            raise ConfigError(f"unknown namespace {namespace!r}; this quantizer has {self.namespaces}")
        return namespace

    def forward(
        self,
        wavs=None,
        texts=None,
        raw_texts=None,
        *,
        namespace: str | None = None,
        return_embed_ids: bool = False,
        sample_rate: int | None = None,
        wav_mask=None,
    ):
        """-> conds (B, q, dim); with `return_embed_ids`, (conds, ids (B, q))."""
        namespace = self._namespace(namespace)
        ids = self.get_embed_ids(wavs, texts, raw_texts, sample_rate, wav_mask)
        conds = self.conds_from_ids(ids, namespace)
        return (conds, ids) if return_embed_ids else conds

    @torch.no_grad()
    def fit_codebooks(self, latents: torch.Tensor, epochs: int = 10, batch_size: int = 256) -> None:
        """Fit the RVQ codebooks (k-means init + EMA) to a set of MuLaN latents (N, dim_latent)."""
        was = self.training
        self.rq.train()
        for _ in range(epochs):
            for chunk in latents.split(batch_size):
                self.quantize_latents(chunk.to(self.device))
        self.rq.train(was)

    @property
    def device(self) -> torch.device:
        return self.mulan.device

    # -- persistence ------------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        return {**self.config, "mulan": self.mulan.get_config()}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Self:
        config = dict(config)
        folder = config.pop("_folder", None)
        mulan_cfg = dict(config.pop("mulan"))
        mulan_cfg["_folder"] = folder
        return cls(MuLaN.from_config(mulan_cfg), **config)

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        folder = super().save_pretrained(folder)
        if isinstance(self.mulan.text, PretrainedTextTransformer):
            self.mulan.text.save_assets(folder)
        return folder

    @classmethod
    def from_pretrained(cls, path_or_id, **kwargs) -> Self:
        return _from_pretrained_with_assets(cls, path_or_id, **kwargs)


__all__ = [
    "ASTConfig",
    "AudioSpectrogramTransformer",
    "MuLaN",
    "MuLaNEmbedQuantizer",
    "PretrainedTextTransformer",
    "TextTransformer",
    "TextTransformerConfig",
    "l2norm",
    "sincos_2d",
]

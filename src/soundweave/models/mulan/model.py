"""`MuLaN`: the joint model - two towers projected to one l2-normalised space, trained contrastively."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Self

import torch
from torch import nn

from ...audio.io import check_sample_rate
from ...errors import ConfigError, ShapeError
from ...nn.contrastive import LOSSES, ContrastiveLoss
from ..base import PretrainedModel
from .audio_tower import AudioSpectrogramTransformer
from .common import _as_batch, _resample_batch, l2norm
from .text_towers import (
    PretrainedTextTransformer,
    TextTransformer,
    _from_pretrained_with_assets,
    _text_tower_from_config,
)


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

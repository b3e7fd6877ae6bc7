"""ClapMuLaN: a pretrained CLAP (transformers' `ClapModel`) behind MuLaN's interface.

    clap = ClapMuLaN("laion/larger_clap_music")            # hub id (online once) or a local folder
    a = clap.get_audio_latents(audio, sample_rate=16000)   # resampled to CLAP's 48 kHz -> unit-norm (B, 512)
    t = clap.get_text_latents(raw_texts=["a slow piano melody"])
    musiclm = MusicLM(audio_lm, quantizer, scorer=clap)    # rerank with CLAP
    quantizer = MuLaNEmbedQuantizer(mulan=clap, conditioning_dims=(512, 512), namespaces=("semantic", "coarse"))

No MuLan weights are public; LAION's CLAP is, and it embeds music and text in one space the same way. The
folder holds the transformers model, its feature extractor (`ClapFeatureExtractor`) and its tokenizer.

Citation: Wu et al., "Large-scale Contrastive Language-Audio Pretraining with Feature Fusion and
Keyword-to-Caption Augmentation" (LAION-CLAP), arXiv 2211.06687.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..audio.io import check_audio, check_sample_rate, resample
from ..errors import CheckpointError, ShapeError
from .base import resolve_pretrained
from .tokenizers import check_texts

DEFAULT_CLAP = "laion/larger_clap_music"
CLAP_DIR = "clap"  # the CLAP files inside a MuLaNEmbedQuantizer folder


class ClapMuLaN(nn.Module):
    """`get_audio_latents(wavs, sample_rate=)`, `get_text_latents(texts= ids | raw_texts= strings)`, `score`,
    `dim_latent`, `sample_rate` - what `MusicLM` reranking and the benchmarks use from a MuLaN. Frozen."""

    def __init__(self, path_or_id: str | os.PathLike = DEFAULT_CLAP, *, device: str | torch.device | None = None):
        super().__init__()
        from transformers import AutoFeatureExtractor, AutoTokenizer, ClapModel

        folder = resolve_pretrained(path_or_id)
        try:
            self.model = ClapModel.from_pretrained(folder)
            self.feature_extractor = AutoFeatureExtractor.from_pretrained(folder)
            self.tokenizer = AutoTokenizer.from_pretrained(folder)
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{str(path_or_id)!r} is not a CLAP folder with model, feature extractor and "
                                  f"tokenizer: {exc}") from exc
        self.source = str(path_or_id)
        self.model.eval().requires_grad_(False)
        if device is not None:
            self.model.to(device)

    def train(self, mode: bool = True):
        super().train(mode)
        self.model.eval()  # frozen: no dropout
        return self

    @property
    def sample_rate(self) -> int:
        return int(self.feature_extractor.sampling_rate)

    @property
    def dim_latent(self) -> int:
        return int(self.model.config.projection_dim)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @staticmethod
    def _embeds(out) -> torch.Tensor:
        return out if isinstance(out, torch.Tensor) else out.pooler_output

    @torch.no_grad()
    def get_audio_latents(self, wavs: torch.Tensor, sample_rate: int | None = None, mask=None,
                          long_audio: str = "window") -> torch.Tensor:
        """(B, T) or (T,) audio at `sample_rate` (default: CLAP's 48 kHz) -> unit-norm (B, dim_latent)."""
        wavs = check_audio(wavs, "audio for CLAP")
        if wavs.ndim == 1:
            wavs = wavs[None]
        sr = check_sample_rate(sample_rate) if sample_rate is not None else self.sample_rate
        if sr != self.sample_rate:
            wavs = resample(wavs, sr, self.sample_rate)
        if mask is not None:  # drop the padding of each clip
            lengths = (mask.sum(-1).float() * self.sample_rate / sr).round().long().clamp(min=1).tolist()
            clips = [w[:n].cpu().numpy() for w, n in zip(wavs, lengths, strict=True)]
        else:
            clips = list(wavs.cpu().numpy())
        inputs = self.feature_extractor(clips, sampling_rate=self.sample_rate, return_tensors="pt")
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        return F.normalize(self._embeds(self.model.get_audio_features(**inputs)).float(), dim=-1)

    @torch.no_grad()
    def get_text_latents(self, texts: torch.Tensor | None = None, raw_texts=None, text_features=None) -> torch.Tensor:
        """Token ids `(B, L)` (texts=) or strings (raw_texts=) -> unit-norm (B, dim_latent)."""
        if isinstance(texts, (str, list, tuple)):
            texts, raw_texts = None, texts
        if texts is not None:
            mask = (texts != self.tokenizer.pad_token_id).long()
            inputs = {"input_ids": texts.to(self.device), "attention_mask": mask.to(self.device)}
        elif raw_texts is not None:
            raw_texts = check_texts(raw_texts)
            inputs = self.tokenizer(raw_texts, padding=True, truncation=True, return_tensors="pt")
            inputs = {k: v.to(self.device) for k, v in inputs.items() if k in ("input_ids", "attention_mask")}
        else:
            raise ShapeError("give token ids (texts=) or strings (raw_texts=)")
        return F.normalize(self._embeds(self.model.get_text_features(**inputs)).float(), dim=-1)

    @torch.no_grad()
    def score(self, wavs: torch.Tensor, raw_texts, sample_rate: int | None = None) -> torch.Tensor:
        """Cosine similarity of each text with each clip: (num_texts, num_clips)."""
        return self.get_text_latents(raw_texts=raw_texts) @ self.get_audio_latents(wavs, sample_rate).t()

    # -- inside a MuLaNEmbedQuantizer folder ----------------------------------------------------------------
    def get_config(self) -> dict:
        return {"source": self.source}

    @classmethod
    def from_config(cls, config: dict) -> ClapMuLaN:
        folder = config.get("_folder")
        local = Path(folder) / CLAP_DIR if folder is not None else None
        return cls(local if local is not None and local.is_dir() else config["source"])

    def save_assets(self, folder: str | os.PathLike) -> None:
        self.save_pretrained(Path(folder) / CLAP_DIR)

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        folder = Path(folder)
        self.model.save_pretrained(folder)
        self.feature_extractor.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)
        return folder

    @classmethod
    def from_pretrained(cls, path_or_id: str | os.PathLike = DEFAULT_CLAP, **kwargs) -> ClapMuLaN:
        return cls(path_or_id, **kwargs)


__all__ = ["DEFAULT_CLAP", "ClapMuLaN"]

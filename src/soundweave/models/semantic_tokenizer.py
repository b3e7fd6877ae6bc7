"""SemanticTokenizer: audio (any rate) -> semantic ids `(B, S)` at `rate` Hz (25 by default).

    wav2vec = SemanticTokenizer(codebook_size=256)          # offline default: hand-made music features
    wav2vec.fit(clips, sample_rate=22050)                   # mini-batch k-means++ on a sample of frames
    ids = wav2vec(audio, input_sample_hz=22050)             # (B, ceil(T_16k / 640)) int64
    wav2vec = SemanticTokenizer("m-a-p/MERT-v0")            # a hub preset (layer 7, per-frame normalised)

Stands where audiolm-pytorch has `HubertWithKmeans` (same `codebook_size`, `target_sample_hz`,
`downsample_factor` and `forward(wav, input_sample_hz=)`), but its centroids live in model.safetensors
(never a joblib or pickle file). Features (models/semantic_features.py): `"music"` = MFCC + delta, chroma,
onset strength and energy, clustered like HuBERT's first iteration clusters MFCCs; or a hidden layer of a
transformers model by hub id or folder. Presets (`PRESETS`): `facebook/w2v-bert-2.0` (layer 7, 50 -> 25 Hz),
`facebook/hubert-base-ls960` (layer 9), `m-a-p/MERT-v0` (layer 7, per-frame normalised). Features are
standardised per dimension (mean and std of the fitted frames) before the nearest-centroid lookup.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import torch

from ..audio.io import check_audio, check_sample_rate, resample
from ..errors import ConfigError, ShapeError
from ..nn.kmeans import minibatch_kmeans, nearest
from .base import PretrainedModel, looks_like_hub_id, read_config, resolve_pretrained
from .semantic_features import HFHiddenFeatures, MusicFeatures

MUSIC = "music"
FEATURE_DIR = "feature_model"
PRESETS: dict[str, dict[str, Any]] = {
    "facebook/w2v-bert-2.0": dict(layer=7, normalize=False, codebook_size=1024),
    "facebook/hubert-base-ls960": dict(layer=9, normalize=False, codebook_size=500),
    "m-a-p/MERT-v0": dict(layer=7, normalize=True, codebook_size=1024),
}


@dataclass
class SemanticTokenizerConfig:
    features: str = MUSIC  # "music", or a transformers model (hub id or folder)
    codebook_size: int = 512
    sample_rate: int = 16000
    rate: float = 25.0  # semantic tokens per second
    layer: int | None = None  # hidden layer of a transformers model
    normalize: bool = False  # per-frame layer norm of the hidden states (MERT)

    def __post_init__(self):
        preset = PRESETS.get(str(self.features), {})
        if self.layer is None and self.features != MUSIC:
            self.layer = preset.get("layer")
            if self.layer is None:
                raise ConfigError(f"say which hidden layer of {self.features!r} to cluster (layer=...)")
        if isinstance(self.codebook_size, bool) or not isinstance(self.codebook_size, int) or self.codebook_size < 2:
            raise ConfigError(f"codebook_size must be an integer >= 2, got {self.codebook_size!r}")
        try:
            check_sample_rate(self.sample_rate)
        except Exception as exc:
            raise ConfigError(f"SemanticTokenizer sample_rate: {exc}") from exc
        if not isinstance(self.rate, (int, float)) or not 0 < self.rate <= 200:
            raise ConfigError(f"rate must be in (0, 200] tokens per second, got {self.rate!r}")
        self.rate = float(self.rate)
        if not (self.sample_rate / self.rate).is_integer():
            raise ConfigError(f"rate {self.rate} Hz must divide sample_rate {self.sample_rate} into whole hops")


class SemanticTokenizer(PretrainedModel):
    """Frame features -> nearest of `codebook_size` k-means centroids: audio `(B, T)` -> ids `(B, S)`.

    Args:
        features: "music" (offline default) or a transformers audio model (hub id or folder); a hub id in
            `PRESETS` brings its layer and normalisation.
        codebook_size: K, the number of semantic units.
        sample_rate: the rate features are computed at (audio is resampled to it at the edge).
        rate: semantic tokens per second; S = ceil(T / (sample_rate / rate)).
        layer / normalize: hidden layer (index into hidden_states) and per-frame normalisation.

    Citation: Hsu et al., "HuBERT", arXiv 2106.07447 (k-means units over MFCC, then hidden layers);
    Borsos et al., "AudioLM", arXiv 2209.03143; Agostinelli et al., "MusicLM", arXiv 2301.11325.
    """

    def __init__(self, features: str | os.PathLike = MUSIC, codebook_size: int | None = None,
                 sample_rate: int = 16000, rate: float = 25.0, layer: int | None = None, normalize: bool | None = None):
        super().__init__()
        features = str(features)
        preset = PRESETS.get(features, {})
        if codebook_size is None:
            codebook_size = preset.get("codebook_size", 512)
        if normalize is None:
            normalize = preset.get("normalize", False)
        self.config = c = SemanticTokenizerConfig(features, codebook_size, sample_rate, rate, layer, normalize)
        if c.features == MUSIC:
            extractor = MusicFeatures(c.sample_rate, c.rate)
        else:
            extractor = HFHiddenFeatures(c.features, c.layer, c.rate, c.normalize, c.sample_rate)
        # kept out of the state dict: the feature model's weights are its own files, not ours
        self.__dict__["extractor"] = extractor
        dim = extractor.dim
        self.register_buffer("centroids", torch.zeros(c.codebook_size, dim))
        self.register_buffer("feature_mean", torch.zeros(dim))
        self.register_buffer("feature_std", torch.ones(dim))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    # -- facts -------------------------------------------------------------------------------------------
    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    target_sample_hz = sample_rate  # audiolm-pytorch's name

    @property
    def rate(self) -> float:
        return self.config.rate

    @property
    def hop_length(self) -> int:
        """Samples (at `sample_rate`) per semantic token."""
        return int(self.config.sample_rate / self.config.rate)

    downsample_factor = hop_length  # audiolm-pytorch's name

    @property
    def is_fitted(self) -> bool:
        return bool(self.fitted)

    def num_tokens(self, num_samples: int, sample_rate: int | None = None) -> int:
        """Tokens that `num_samples` samples at `sample_rate` (default: ours) become."""
        sr = sample_rate or self.sample_rate
        return max(1, math.ceil(round(num_samples * self.sample_rate / sr, 6) / self.hop_length))

    def seconds_to_tokens(self, seconds: float) -> int:
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not seconds > 0:
            raise ConfigError(f"seconds must be a positive number, got {seconds!r}")
        return max(1, math.ceil(round(seconds * self.rate, 6)))

    # -- features ---------------------------------------------------------------------------------------
    def _prepare(self, wavs, sample_rate: int | None) -> torch.Tensor:
        wavs = check_audio(wavs, "audio for SemanticTokenizer")
        if wavs.ndim == 1:
            wavs = wavs[None]
        if wavs.ndim != 2:
            raise ShapeError(f"audio for SemanticTokenizer must be (T,) or (B, T), got {tuple(wavs.shape)}")
        sr = check_sample_rate(sample_rate) if sample_rate is not None else self.sample_rate
        if sr != self.sample_rate:
            wavs = resample(wavs, sr, self.sample_rate)
        return wavs

    @torch.no_grad()
    def raw_features(self, wavs, sample_rate: int | None = None) -> torch.Tensor:
        """Unstandardised frame features `(B, S, D)`."""
        wavs = self._prepare(wavs, sample_rate)
        device = self.centroids.device
        self.extractor.to(device)  # kept outside the module tree, so it follows the centroids here
        return self.extractor(wavs.to(device)).float().to(device)

    @torch.no_grad()
    def features(self, wavs, sample_rate: int | None = None) -> torch.Tensor:
        """Standardised frame features `(B, S, D)` (the space the centroids live in)."""
        return (self.raw_features(wavs, sample_rate) - self.feature_mean) / self.feature_std

    # -- fitting ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def fit(self, clips: Sequence[torch.Tensor] | torch.Tensor, sample_rate: int | None = None, *,
            max_frames: int = 100_000, iters: int = 100, batch_size: int = 10_000,
            generator: torch.Generator | None = None, seed: int | None = 0, progress=None) -> Self:
        """Fit the centroids: features of every clip, a random sample of at most `max_frames` frames,
        per-dimension standardisation, mini-batch k-means++ (K = codebook_size). `progress(done, total)` is
        called after each clip. Returns self."""
        if isinstance(clips, torch.Tensor):
            clips = list(clips) if clips.ndim == 2 else [clips]
        clips = list(clips)
        if not clips:
            raise ShapeError("fit needs at least one clip")
        frames = []
        for i, clip in enumerate(clips):
            frames.append(self.raw_features(clip, sample_rate)[0].cpu())
            if progress is not None:
                progress(i + 1, len(clips))
        points = torch.cat(frames)
        if generator is None and seed is not None:
            generator = torch.Generator().manual_seed(seed)
        if points.shape[0] > max_frames:
            points = points[torch.randperm(points.shape[0], generator=generator)[:max_frames]]
        if points.shape[0] < self.codebook_size:
            raise ShapeError(f"{points.shape[0]} frames are fewer than codebook_size {self.codebook_size}; "
                             "give more audio or a smaller codebook")
        mean, std = points.mean(0), points.std(0).clamp_min(1e-4)
        standard = (points - mean) / std
        centroids = minibatch_kmeans(standard, self.codebook_size, iters=iters, batch_size=batch_size,
                                     generator=generator)
        device = self.centroids.device
        self.centroids.copy_(centroids.to(device))
        self.feature_mean.copy_(mean.to(device))
        self.feature_std.copy_(std.to(device))
        self.fitted.fill_(True)
        return self

    # -- tokenizing ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def forward(self, wav_input: torch.Tensor, flatten: bool = True, input_sample_hz: int | None = None,
                sample_rate: int | None = None) -> torch.Tensor:
        """Audio `(T,)` or `(B, T)` at `input_sample_hz` / `sample_rate` (default: ours) -> ids `(B, S)` int64."""
        if not self.is_fitted:
            raise ConfigError("this SemanticTokenizer has no centroids yet: call fit(clips) or run "
                              "`soundweave train semantic-tokenizer`, or load a fitted one with from_pretrained")
        feats = self.features(wav_input, input_sample_hz if input_sample_hz is not None else sample_rate)
        b, s, d = feats.shape
        return nearest(feats.reshape(b * s, d), self.centroids).reshape(b, s)

    def tokenize(self, wavs, sample_rate: int | None = None) -> torch.Tensor:
        return self(wavs, sample_rate=sample_rate)

    # -- persistence ---------------------------------------------------------------------------------------
    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        folder = Path(folder)
        source = self.config.features
        if source != MUSIC and not looks_like_hub_id(source):  # a local model: keep a copy beside us
            target = folder / FEATURE_DIR
            if Path(source).resolve() != target.resolve():
                if target.exists():
                    shutil.rmtree(target)
                shutil.copytree(self.extractor.folder, target)
            config, self.config.features = self.config.features, FEATURE_DIR
            try:
                return super().save_pretrained(folder)
            finally:
                self.config.features = config
        return super().save_pretrained(folder)

    @classmethod
    def from_pretrained(cls, path_or_id, **kwargs) -> Self:
        folder = resolve_pretrained(path_or_id)
        if read_config(folder).get("features") == FEATURE_DIR and "features" not in kwargs:
            kwargs["features"] = str(folder / FEATURE_DIR)
        return super().from_pretrained(folder, **kwargs)


__all__ = ["PRESETS", "SemanticTokenizer", "SemanticTokenizerConfig"]

"""What every soundweave codec offers: audio (B, T) <-> residual-VQ codes (B, N, Q) int64.

    codes = codec.encode(audio, sample_rate=44100)   # any input rate: resampled to codec.sample_rate
    audio = codec.decode(codes)                      # (B, N * codec.hop_length) at codec.sample_rate

`Codec` holds the parts every codec shares - the facts (frame rate, bitrate, frames <-> seconds), the input
checks (audio shape / rate, code range) and the conveniences (`reconstruct`, the soundstorm-pytorch name
`decode_from_codebook_indices`). A codec class provides `sample_rate`, `hop_length`, `num_quantizers`,
`codebook_size`, `_encode(audio (B, T) at its rate, num_quantizers) -> codes` and `_decode(codes) -> audio`.
"""

from __future__ import annotations

import math
import numbers

import torch

from ...audio.io import check_audio, resample
from ...errors import ConfigError, ShapeError


class Codec:
    """Mixin for nn.Module codecs (SoundStream, SpectralCodec, the transformers adapters)."""

    # -- facts (subclasses provide sample_rate, hop_length, num_quantizers, codebook_size) --------------
    sample_rate: int
    hop_length: int
    num_quantizers: int
    codebook_size: int

    @property
    def frame_rate(self) -> float:
        """Code frames per second."""
        return self.sample_rate / self.hop_length

    def bitrate(self, num_quantizers: int | None = None) -> float:
        """Bits per second when `num_quantizers` levels (default all) are kept."""
        q = self.num_quantizers if num_quantizers is None else num_quantizers
        return self.frame_rate * q * math.log2(self.codebook_size)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def seconds_to_frames(self, seconds: float) -> int:
        """Number of code frames that covers `seconds` of audio (ceil)."""
        if isinstance(seconds, bool) or not isinstance(seconds, numbers.Real) or not math.isfinite(seconds) \
                or seconds <= 0:
            raise ConfigError(f"seconds must be a positive number, got {seconds!r}")
        return max(1, math.ceil(round(seconds * self.sample_rate, 6) / self.hop_length))

    def frames_to_samples(self, frames: int) -> int:
        return int(frames) * self.hop_length

    def describe(self) -> str:
        """One line: kind, rates, levels, bitrate."""
        return (f"{type(self).__name__}: {self.sample_rate} Hz, hop {self.hop_length} ({self.frame_rate:g} frames/s), "
                f"{self.num_quantizers} x {self.codebook_size} codes = {self.bitrate() / 1000:.2f} kbps")

    # -- input handling ---------------------------------------------------------------------------------
    def _prepare_audio(self, audio: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
        """(T,), (B, T) or (B, 1, T) -> float (B, T) on the model's device, at the codec's rate."""
        name = type(self).__name__
        if isinstance(audio, torch.Tensor) and audio.ndim == 3:
            if audio.shape[1] != 1:
                raise ShapeError(f"{name} is mono: got audio of shape {tuple(audio.shape)}; pass (B, T) or "
                                 "(B, 1, T) (average the channels first)")
            audio = audio[:, 0]
        audio = check_audio(audio, f"audio for {name}")
        if sample_rate is not None and int(sample_rate) != self.sample_rate:
            audio = resample(audio, sample_rate, self.sample_rate)
        if audio.ndim == 1:
            audio = audio[None]
        return audio.to(self.device)

    def _pad_to_hop(self, audio: torch.Tensor) -> torch.Tensor:
        """(B, T) -> (B, ceil(T / hop) * hop): zeros on the right, so every frame is whole."""
        pad = (-audio.shape[-1]) % self.hop_length
        return torch.nn.functional.pad(audio, (0, pad)) if pad else audio

    def _check_num_quantizers(self, num_quantizers: int | None) -> int:
        q = self.num_quantizers if num_quantizers is None else num_quantizers
        if isinstance(q, bool) or not isinstance(q, numbers.Integral) or not 1 <= q <= self.num_quantizers:
            raise ConfigError(f"num_quantizers must be in [1, {self.num_quantizers}], got {num_quantizers!r}")
        return int(q)

    def _check_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Integer codes (B, N, Q') or (N, Q') with 1 <= Q' <= Q and values in [0, codebook_size) -> long (B, N, Q')."""
        if not isinstance(codes, torch.Tensor):
            try:
                codes = torch.as_tensor(codes)
            except (TypeError, ValueError, RuntimeError) as exc:
                raise ShapeError(f"codes must be an integer tensor (B, N, Q), got {type(codes).__name__}") from exc
        if codes.is_floating_point() or codes.is_complex() or codes.dtype == torch.bool:
            raise ShapeError(f"codes must be integers, got dtype {codes.dtype}")
        if codes.ndim == 2:
            codes = codes[None]
        if codes.ndim != 3:
            raise ShapeError(f"codes must be (B, N, Q) (or (N, Q) for one item), got shape {tuple(codes.shape)}")
        b, n, q = codes.shape
        if n == 0 or b == 0:
            raise ShapeError(f"codes have no frames: shape {tuple(codes.shape)}")
        if not 1 <= q <= self.num_quantizers:
            raise ShapeError(f"codes have {q} levels but this codec has {self.num_quantizers}; pass (B, N, Q) with "
                             f"1 <= Q <= {self.num_quantizers} (the first Q levels)")
        if codes.min() < 0 or codes.max() >= self.codebook_size:
            raise ShapeError(f"code values must be in [0, {self.codebook_size}), got "
                             f"min {int(codes.min())}, max {int(codes.max())}")
        return codes.long().to(self.device)

    # -- the interface ----------------------------------------------------------------------------------
    def _encode(self, audio: torch.Tensor, num_quantizers: int) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _decode(self, codes: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    @torch.no_grad()
    def encode(self, audio: torch.Tensor, num_quantizers: int | None = None, sample_rate: int | None = None
               ) -> torch.Tensor:
        """audio (T,), (B, T) or (B, 1, T) at `sample_rate` (default: the codec's) -> codes (B, N, Q) int64.

        N = ceil(T / hop_length) (the tail is padded). `num_quantizers` keeps only the first levels (a lower
        bitrate). Deterministic.
        """
        q = self._check_num_quantizers(num_quantizers)
        return self._encode(self._prepare_audio(audio, sample_rate), q).long()

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, N, Q') int (Q' <= Q: the first levels; (N, Q') = one item) -> audio (B, N * hop_length)."""
        return self._decode(self._check_codes(codes)).float()

    def decode_from_codebook_indices(self, codes: torch.Tensor) -> torch.Tensor:
        """Same as `decode` (the name soundstorm-pytorch and audiolm-pytorch use)."""
        return self.decode(codes)

    @torch.no_grad()
    def reconstruct(self, audio: torch.Tensor, num_quantizers: int | None = None,
                    sample_rate: int | None = None) -> torch.Tensor:
        """encode + decode, trimmed to the input length: (B, T) -> (B, T) at the codec's rate."""
        audio = self._prepare_audio(audio, sample_rate)
        return self.decode(self.encode(audio, num_quantizers))[:, : audio.shape[-1]]


__all__ = ["Codec"]

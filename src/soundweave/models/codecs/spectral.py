"""SpectralCodec: the fast offline codec - residual VQ over log-mel frames, decoded by Griffin-Lim.

    codec = SpectralCodec()                          # 16 kHz, hop 320 (50 frames/s), 8 x 1024 codes = 4 kbps
    codec.fit(clips)                                 # residual k-means on the clips' log-mel frames (seconds)
    codes = codec.encode(audio, sample_rate=sr)      # (B, N, 8) int64
    audio = codec.decode(codes)                      # (B, N * 320)

Why this design (measured in benchmarks/codec_quality.py): a learned codec has to learn its decoder before
it reconstructs anything. On a CPU budget of minutes `SoundStream`'s transposed-convolution decoder
collapses to a hum, and a learned STFT decoder (Vocos-style) first learns the corpus's average spectrum,
with a buzz at the frame rate from its untrained phase. Here nothing has to be learned but the codebooks.
Each frame (window = 4 hops, centred at i * hop) becomes a log-mel vector; a residual vector quantizer
codes it with Q levels, each a k-means codebook fitted on what the previous levels left (the residual
quantization of SoundStream, fitted directly the way HuBERT fits its units - in seconds on two cores).
Level 0 carries the coarse spectrum and each further level refines it, so fewer levels give a lower
bitrate with the same model. Decoding sums the codes into a log-mel frame, turns mel into a linear
magnitude by non-negative least squares and finds a phase by fast Griffin-Lim (Perraudin et al. 2013).

A generator (SoundStorm, MusicLM, text to speech) can emit code combinations no real frame has: residuals
fitted under one level-0 code added to another. Their sums overshoot in a few bands - on a SoundStorm
continuation, log-mel peaks of 8.4 where the corpus never exceeds 2.9, heard as loud broadband bursts (RMS 16
against 0.17 for the real clip). So `fit` also stores each mel band's largest log value in the fitted frames
(`frame_max`) and decoding clips every band to it. A folder written before `frame_max` existed loads without
it and decodes unclipped, as it did, until `fit_frame_max(clips)` sets the ceiling alone.

Distances are Euclidean on the log-mel values (natural log of the magnitude mel, floored at `log_floor`),
the same scale as soundweave's mel distance metric.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange

from ...audio.griffin_lim import griffin_lim, mel_to_linear
from ...audio.io import check_sample_rate
from ...audio.mel import mel_filterbank
from ...errors import ConfigError, ShapeError
from ...nn.kmeans import nearest, residual_kmeans
from ..base import PretrainedModel
from .base import Codec

REPORT_FRAMES = 20_000  # frames `fit` measures its quantization error on


@dataclass
class SpectralCodecConfig:
    sample_rate: int = 16000
    hop_length: int = 320  # samples per code frame: 50 frames/s at 16 kHz
    window_hops: int = 4  # analysis window (and FFT size) = window_hops * hop_length
    n_mels: int = 160
    num_quantizers: int = 8
    codebook_size: int = 1024
    log_floor: float = 1e-5  # magnitude floor before the log
    griffin_lim_iters: int = 32
    griffin_lim_momentum: float = 0.99
    nnls_iters: int = 10  # mel -> linear magnitude refinement steps

    def __post_init__(self):
        try:
            check_sample_rate(self.sample_rate, "codec sample_rate")
        except Exception as exc:
            raise ConfigError(str(exc)) from exc
        for name in ("hop_length", "window_hops", "n_mels", "num_quantizers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"SpectralCodec {name} must be a positive integer, got {value!r}")
        if self.codebook_size < 2:
            raise ConfigError(f"codebook_size must be >= 2, got {self.codebook_size}")
        if self.n_fft < 16:
            raise ConfigError(f"the STFT window ({self.window_hops} x {self.hop_length} samples) is too short")
        if self.n_mels > self.n_fft // 2 + 1:
            raise ConfigError(f"n_mels ({self.n_mels}) must not exceed the {self.n_fft // 2 + 1} FFT bins")
        if not 0 < self.log_floor < 1:
            raise ConfigError(f"log_floor must be in (0, 1), got {self.log_floor}")
        if self.griffin_lim_iters < 0 or self.nnls_iters < 0:
            raise ConfigError("griffin_lim_iters and nnls_iters must be >= 0")
        if not 0 <= self.griffin_lim_momentum < 1:
            raise ConfigError(f"griffin_lim_momentum must be in [0, 1), got {self.griffin_lim_momentum}")

    @property
    def n_fft(self) -> int:
        return self.hop_length * self.window_hops


class SpectralCodec(Codec, PretrainedModel):
    """Residual VQ over log-mel frames with a Griffin-Lim decoder. See the module docstring.

    Citations: Zeghidour et al., "SoundStream" (arXiv 2107.03312) for residual vector quantization; Hsu et
    al., "HuBERT" (arXiv 2106.07447) for units fitted by k-means on spectral features; Griffin & Lim (1984)
    and Perraudin, Balazs & Sondergaard (2013) for the (fast) phase reconstruction.
    """

    optional_weights = ("frame_max",)  # folders saved before the decoding ceiling existed load unclipped

    def __init__(self, **kwargs):
        super().__init__()
        self.config = c = SpectralCodecConfig(**kwargs)
        # until `fit`, random codebooks around a quiet spectrum (so an unfitted codec still encodes/decodes)
        g = torch.Generator().manual_seed(0)
        books = 0.5 * torch.randn(c.num_quantizers, c.codebook_size, c.n_mels, generator=g)
        books[0] += torch.log(torch.tensor(c.log_floor)) / 2
        self.register_buffer("codebooks", books)  # (Q, K, n_mels), persistent: saved with the model
        # per-band ceiling of decoded log-mel frames, set by `fit` (+inf: unclipped, e.g. an older folder)
        self.register_buffer("frame_max", torch.full((c.n_mels,), float("inf")))
        self.register_buffer("window", torch.hann_window(c.n_fft), persistent=False)
        filters = mel_filterbank(c.sample_rate, c.n_fft, c.n_mels)
        self.register_buffer("filters", filters, persistent=False)  # (n_mels, bins)
        self.register_buffer("filters_pinv", torch.linalg.pinv(filters), persistent=False)

    # -- facts ----------------------------------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def hop_length(self) -> int:
        return self.config.hop_length

    @property
    def num_quantizers(self) -> int:
        return self.config.num_quantizers

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    @property
    def device(self) -> torch.device:
        return self.codebooks.device

    # -- analysis -------------------------------------------------------------------------------------------
    def log_mel(self, audio: torch.Tensor) -> torch.Tensor:
        """(B, T) at the codec's rate -> log-mel frames (B, N, n_mels), N = ceil(T / hop), frame i centred at
        i * hop."""
        c = self.config
        audio = self._pad_to_hop(audio.float())
        spec = torch.stft(audio, c.n_fft, c.hop_length, window=self.window, center=True, pad_mode="constant",
                          return_complex=True).abs()
        mel = torch.log((self.filters @ spec).clamp_min(c.log_floor))
        return rearrange(mel, "b m n -> b n m")[:, : audio.shape[-1] // c.hop_length]

    # -- quantization ---------------------------------------------------------------------------------------
    def quantize(self, frames: torch.Tensor, num_quantizers: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-mel frames (B, N, M) -> (quantized frames (B, N, M), codes (B, N, q)): nearest code per level."""
        q = self._check_num_quantizers(num_quantizers)
        residual = frames.reshape(-1, frames.shape[-1]).float()
        total = torch.zeros_like(residual)
        codes = []
        for level in range(q):
            book = self.codebooks[level].float()
            idx = nearest(residual, book)
            chosen = book[idx]
            residual = residual - chosen
            total = total + chosen
            codes.append(idx)
        return total.reshape(frames.shape), torch.stack(codes, dim=-1).reshape(*frames.shape[:-1], q)

    def codes_to_frames(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, N, Q') with Q' <= Q -> log-mel frames (B, N, M): the sum of the first Q' levels' codes, each band
        clipped to the largest value `fit` saw in it (`frame_max`)."""
        total = 0
        for level in range(codes.shape[-1]):
            total = total + self.codebooks[level][codes[..., level]]
        return torch.minimum(total, self.frame_max.to(total.dtype))

    @torch.no_grad()
    def fit(self, clips, iters: int = 10, max_frames: int = 200_000, generator: torch.Generator | None = None
            ) -> dict[str, float]:
        """Fit the codebooks by residual k-means on the log-mel frames of `clips` (list of (T,) tensors at the
        codec's rate, or one (B, T) tensor); at most `max_frames` frames, drawn at random. Returns the mean
        absolute log-mel error of the fitted quantizer on (up to 20,000 of) those frames, with 1 and with all
        levels."""
        points = torch.cat(self._clip_frames(clips, "fit"))
        if points.shape[0] > max_frames:
            points = points[torch.randperm(points.shape[0], generator=generator)[:max_frames]]
        c = self.config
        self.frame_max.copy_(points.max(0).values.to(self.frame_max))
        self.codebooks.copy_(residual_kmeans(points, c.num_quantizers, c.codebook_size, iters,
                                             generator=generator).to(self.codebooks))
        check = points[torch.randperm(points.shape[0], generator=generator)[:REPORT_FRAMES]]
        full, codes = self.quantize(check[None])
        one = self.codes_to_frames(codes[..., :1])
        return {"frames": int(points.shape[0]), "error_1_level": float((one[0] - check).abs().mean()),
                "error_all_levels": float((full[0] - check).abs().mean())}

    @torch.no_grad()
    def fit_frame_max(self, clips) -> torch.Tensor:
        """Set only the decoding ceiling (`frame_max`, each band's largest log-mel value) from `clips`, as `fit`
        does - for a folder saved before the ceiling existed, whose codebooks should stay as they are."""
        peaks = torch.stack([frames.max(0).values for frames in self._clip_frames(clips, "fit_frame_max")])
        self.frame_max.copy_(peaks.max(0).values.to(self.frame_max))
        return self.frame_max

    def _clip_frames(self, clips, what: str) -> list[torch.Tensor]:
        """The log-mel frames `(N_i, n_mels)` of each non-empty clip (a list of (T,) tensors at the codec's rate,
        or one (B, T) tensor); a ShapeError naming `what` when there are none."""
        if isinstance(clips, torch.Tensor):
            clips = list(clips) if clips.ndim == 2 else [clips]
        frames = [self.log_mel(self._prepare_audio(clip))[0] for clip in clips if clip.numel()]
        if not frames:
            raise ShapeError(f"{what} needs at least one non-empty clip")
        return frames

    def first_levels(self, num_quantizers: int) -> SpectralCodec:
        """A new codec made of this one's first `num_quantizers` levels: the same analysis and decoder, the first
        codebooks. Its codes are this codec's `encode(audio, num_quantizers=...)`, and it decodes them to the same
        audio - a lower-bitrate codec to hand to a model that wants fewer levels (e.g. an 8-level SoundStorm on
        the 40-level "hifi" codec), since a SoundStorm network must match its codec's levels exactly."""
        q = self._check_num_quantizers(num_quantizers)
        smaller = type(self)(**{**self.get_config(), "num_quantizers": q})
        smaller.codebooks.copy_(self.codebooks[:q])
        smaller.frame_max.copy_(self.frame_max)
        return smaller.to(self.device)

    # -- synthesis ------------------------------------------------------------------------------------------
    def frames_to_audio(self, frames: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Log-mel frames (B, N, M) -> audio (B, N * hop): NNLS mel -> linear magnitude, then fast Griffin-Lim
        (a fixed-seed initial phase unless `generator` is given, so decoding is deterministic)."""
        c = self.config
        mel = rearrange(torch.exp(frames.float()), "b n m -> b m n")
        mel = torch.cat([mel, mel[..., -1:]], dim=-1)  # one more frame: the centred STFT of N * hop samples
        magnitude = mel_to_linear(mel, self.filters, n_iter=c.nnls_iters, pinv=self.filters_pinv)
        generator = generator or torch.Generator(device=mel.device).manual_seed(0)
        return griffin_lim(magnitude, c.n_fft, c.hop_length, n_iter=c.griffin_lim_iters,
                           momentum=c.griffin_lim_momentum, length=frames.shape[1] * c.hop_length,
                           generator=generator)

    # -- the Codec interface --------------------------------------------------------------------------------
    def _encode(self, audio: torch.Tensor, num_quantizers: int) -> torch.Tensor:
        return self.quantize(self.log_mel(audio), num_quantizers)[1]

    def _decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self.frames_to_audio(self.codes_to_frames(codes))


__all__ = ["SpectralCodec", "SpectralCodecConfig"]

"""SoundStream: a neural audio codec, waveform <-> residual-VQ codes `(B, N, Q)`.

    codec = SoundStream(codebook_size=1024, rq_num_quantizers=12, attn_window_size=128, attn_depth=2)
    codes = codec.encode(audio)          # (B, T) float at codec.sample_rate -> (B, N, Q) int64
    audio = codec.decode(codes)          # (B, N, Q) -> (B, N * codec.hop_length)
    loss, parts = codec(audio, return_loss_breakdown=True)   # training

Follows Zeghidour et al. 2021, "SoundStream: An End-to-End Neural Audio Codec" (arXiv 2107.03312):
a convolutional encoder of strided blocks with dilated residual units, a residual vector quantizer
(here `vector_quantize_pytorch.ResidualVQ`: k-means initialisation, EMA codebooks, dead-code
replacement, and quantizer dropout so one model serves every bitrate from 1 to Q levels), and a
mirrored decoder. The convolutions can be causal (`causal=True`) for streaming. A local-window
transformer in the bottleneck (on both sides of the quantizer) widens the receptive field, as in
later SoundStream implementations.

The default configuration is the one SoundStorm and MusicLM use: 24 kHz, strides (2, 4, 6, 10) = hop
480 (50 frames/s), 12 levels of 1024 codes = 6 kbps. Audio whose length is not a multiple of the hop is
zero-padded on the right; `encode` returns ceil(T / hop) frames.

Encoding is always deterministic (nearest code, level by level), in train or eval mode, and never
changes the codebooks; on an untrained model it uses the random initial codebooks. Only the training
forward pass runs the library quantizer (k-means init on the first batch, EMA updates, dead-code
replacement, quantizer dropout).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from vector_quantize_pytorch import ResidualVQ

from ...audio.io import check_sample_rate
from ...errors import ConfigError
from ...nn.conv import WaveDecoder, WaveEncoder
from ...nn.local_attention import LocalTransformer
from ...nn.spectral_losses import MultiResolutionSTFTLoss, MultiScaleMelLoss
from ..base import PretrainedModel
from .base import Codec

_TUPLE_FIELDS = ("channel_mults", "strides", "dilations", "multi_spectral_window_powers_of_two", "stft_loss_fft_sizes")


MAX_QUANTIZERS = 1024


@dataclass
class SoundStreamConfig:
    sample_rate: int = 24000
    channels: int = 32  # C: width of the outermost encoder/decoder stage
    channel_mults: tuple[int, ...] = (2, 4, 8, 16)  # stage widths C * m
    strides: tuple[int, ...] = (2, 4, 6, 10)  # hop = prod(strides) = 480 -> 50 frames/s at 24 kHz
    codebook_dim: int = 512  # D: latent (embedding) dimension quantized by the RVQ
    codebook_size: int = 1024
    rq_num_quantizers: int = 12
    rq_commitment_weight: float = 1.0
    rq_ema_decay: float = 0.95
    rq_kmeans_init: bool = True
    rq_kmeans_iters: int = 10
    rq_threshold_ema_dead_code: float = 2.0
    rq_quantize_dropout: bool = True  # train with a random number of levels (bitrate scalability)
    rq_quantize_dropout_cutoff_index: int = 0  # always keep levels 0..cutoff
    dilations: tuple[int, ...] = (1, 3, 9)
    kernel_size: int = 7
    causal: bool = False
    use_local_attn: bool = True
    attn_window_size: int = 128  # frames each side (causal: before)
    attn_depth: int = 1  # blocks on each side of the quantizer
    attn_heads: int = 8
    attn_dim_head: int = 64
    attn_ff_mult: float = 2.0
    wave_loss_weight: float = 0.1  # L1 on the waveform
    mel_loss_weight: float = 1.0  # SoundStream multi-scale mel loss
    stft_loss_weight: float = 1.0  # multi-resolution STFT loss
    commitment_loss_weight: float = 1.0
    multi_spectral_window_powers_of_two: tuple[int, ...] = (6, 7, 8, 9, 10, 11)
    stft_loss_fft_sizes: tuple[int, ...] = (512, 1024, 2048)

    def __post_init__(self):
        for name in _TUPLE_FIELDS:
            setattr(self, name, tuple(int(v) for v in getattr(self, name)))
        try:
            check_sample_rate(self.sample_rate, "codec sample_rate")
        except Exception as exc:
            raise ConfigError(str(exc)) from exc
        positive = ("channels", "codebook_dim", "rq_num_quantizers", "kernel_size", "attn_heads", "attn_dim_head")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"SoundStream {name} must be >= 1, got {getattr(self, name)}")
        if self.codebook_size < 2:
            raise ConfigError(f"codebook_size must be >= 2, got {self.codebook_size}")
        if self.rq_num_quantizers > MAX_QUANTIZERS:  # (the RVQ builds per-level settings before any layer)
            raise ConfigError(f"rq_num_quantizers must be at most {MAX_QUANTIZERS}, got {self.rq_num_quantizers}")
        if not self.strides or any(s < 1 for s in self.strides):
            raise ConfigError(f"strides must be a non-empty tuple of positive ints, got {self.strides}")
        if len(self.channel_mults) != len(self.strides):
            raise ConfigError(f"channel_mults {self.channel_mults} and strides {self.strides} need the same length "
                              "(one encoder/decoder block per stride)")
        if any(m < 1 for m in self.channel_mults):
            raise ConfigError(f"channel_mults must be positive, got {self.channel_mults}")
        if self.use_local_attn and self.attn_depth > 0 and self.attn_window_size < 1:
            raise ConfigError(f"attn_window_size must be >= 1, got {self.attn_window_size}")
        if self.attn_depth < 0:
            raise ConfigError(f"attn_depth must be >= 0, got {self.attn_depth}")
        if not 0 <= self.rq_quantize_dropout_cutoff_index < self.rq_num_quantizers:
            raise ConfigError(f"rq_quantize_dropout_cutoff_index must be in [0, {self.rq_num_quantizers}), "
                              f"got {self.rq_quantize_dropout_cutoff_index}")
        if not 0.0 < self.rq_ema_decay < 1.0:
            raise ConfigError(f"rq_ema_decay must be in (0, 1), got {self.rq_ema_decay}")


def quiet_kmeans_init(vq_layers):
    """A context that mutes vector-quantize-pytorch's "k-means init received fewer vectors than codes"
    warning while any of `vq_layers` still waits for its k-means init: with small batches (and quantizer
    dropout initialising deeper levels later) it is expected, and dead-code replacement re-seeds
    duplicated codes from later batches."""
    pending = any(not bool(layer._codebook.initted) for layer in vq_layers)
    try:
        from loguru import logger
    except ImportError:  # pragma: no cover - a dependency of vector-quantize-pytorch
        logger = None
    if not pending or logger is None:
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def muted():
        logger.disable("vector_quantize_pytorch")
        try:
            yield
        finally:
            logger.enable("vector_quantize_pytorch")

    return muted()


@dataclass
class CodecLoss:
    """What a training forward pass computes."""

    loss: torch.Tensor  # weighted total
    breakdown: dict[str, float]  # each term (unweighted) and the total, as floats
    recons: torch.Tensor  # (B, T) reconstruction, trimmed to the input length
    codes: torch.Tensor  # (B, N, Q) int64; levels dropped by quantizer dropout are -1


class SoundStream(Codec, PretrainedModel):
    """SoundStream codec (Zeghidour et al. 2021, arXiv 2107.03312). See the module docstring."""

    def __init__(self, **kwargs):
        super().__init__()
        self.config = SoundStreamConfig(**kwargs)
        c = self.config
        self.encoder = WaveEncoder(c.channels, c.channel_mults, c.strides, c.codebook_dim, c.dilations, c.kernel_size,
                                   c.causal)
        self.decoder = WaveDecoder(c.channels, c.channel_mults, c.strides, c.codebook_dim, c.dilations, c.kernel_size,
                                   c.causal)
        depth = c.attn_depth if c.use_local_attn else 0
        attn = dict(window=max(1, c.attn_window_size), heads=c.attn_heads, dim_head=c.attn_dim_head,
                    ff_mult=c.attn_ff_mult, causal=c.causal)
        self.encoder_attn = LocalTransformer(c.codebook_dim, depth, **attn)
        self.decoder_attn = LocalTransformer(c.codebook_dim, depth, **attn)
        self.rvq = ResidualVQ(
            dim=c.codebook_dim, num_quantizers=c.rq_num_quantizers, codebook_size=c.codebook_size,
            decay=c.rq_ema_decay, commitment_weight=c.rq_commitment_weight, kmeans_init=c.rq_kmeans_init,
            kmeans_iters=c.rq_kmeans_iters, threshold_ema_dead_code=c.rq_threshold_ema_dead_code,
            quantize_dropout=c.rq_quantize_dropout, quantize_dropout_cutoff_index=c.rq_quantize_dropout_cutoff_index,
        )
        if c.rq_kmeans_init:
            # k-means init leaves zero codebooks until the first training batch; give an untrained model
            # distinct random codes so encode/decode are meaningful (k-means still replaces them later)
            with torch.no_grad():
                for layer in self.rvq.layers:
                    embed = layer._codebook.embed
                    embed.copy_(torch.randn_like(embed) / math.sqrt(c.codebook_dim))
        self.mel_loss = MultiScaleMelLoss(c.sample_rate, c.multi_spectral_window_powers_of_two)
        self.stft_loss = MultiResolutionSTFTLoss(c.stft_loss_fft_sizes)

    # -- facts ------------------------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def hop_length(self) -> int:
        return math.prod(self.config.strides)

    @property
    def num_quantizers(self) -> int:
        return self.config.rq_num_quantizers

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    @property
    def codebook_dim(self) -> int:
        return self.config.codebook_dim

    # -- the network, piece by piece (differentiable) ---------------------------------------------------
    def encode_latents(self, audio: torch.Tensor) -> torch.Tensor:
        """(B, T) with T a multiple of hop -> continuous latents (B, N, D)."""
        z = self.encoder(audio[:, None])
        return self.encoder_attn(rearrange(z, "b d n -> b n d"))

    def quantize_latents(self, latents: torch.Tensor, num_quantizers: int | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        """Deterministic residual VQ: latents (B, N, D) -> (quantized (B, N, D), codes (B, N, q)).

        Nearest code per level (Euclidean), using the current codebooks; never updates them.
        """
        q = self.num_quantizers if num_quantizers is None else int(num_quantizers)
        if not 1 <= q <= self.num_quantizers:
            raise ConfigError(f"num_quantizers must be in [1, {self.num_quantizers}], got {num_quantizers}")
        residual = self.rvq.project_in(latents).float()
        codes = []
        # nearest-code decisions in fp32 even under bf16 autocast, so codes do not depend on precision
        with torch.autocast(device_type=residual.device.type, enabled=False):
            codebooks = self.rvq.codebooks.float()  # (Q, K, D)
            flat = residual.reshape(-1, residual.shape[-1])
            total = torch.zeros_like(flat)
            for level in range(q):
                book = codebooks[level]
                # argmin ||r - e||^2 = argmin (||e||^2 - 2 r.e)
                scores = book.pow(2).sum(-1)[None] - 2 * flat @ book.t()
                idx = scores.argmin(dim=-1)
                chosen = book[idx]
                flat = flat - chosen
                total = total + chosen
                codes.append(idx)
        quantized = self.rvq.project_out(total.reshape(residual.shape))
        codes = torch.stack(codes, dim=-1).reshape(*latents.shape[:-1], q)
        return quantized.to(latents.dtype), codes

    def codes_to_latents(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, N, Q') with Q' <= Q -> quantized latents (B, N, D), the sum of the first Q' levels' codes."""
        codebooks = self.rvq.codebooks  # (Q, K, D)
        q = codes.shape[-1]
        total = 0
        for level in range(q):
            total = total + F.embedding(codes[..., level], codebooks[level])
        return self.rvq.project_out(total)

    def decode_latents(self, quantized: torch.Tensor) -> torch.Tensor:
        """Quantized latents (B, N, D) -> audio (B, N * hop)."""
        x = self.decoder_attn(quantized)
        return self.decoder(rearrange(x, "b n d -> b d n"))[:, 0]

    # -- inference (Codec.encode / decode call these) ---------------------------------------------------
    def _encode(self, audio: torch.Tensor, num_quantizers: int) -> torch.Tensor:
        """(B, T) at the codec's rate -> codes (B, ceil(T / hop), q); the tail is zero-padded."""
        _, codes = self.quantize_latents(self.encode_latents(self._pad_to_hop(audio)), num_quantizers)
        return codes

    def _decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self.decode_latents(self.codes_to_latents(codes))

    # -- training -----------------------------------------------------------------------------------------
    def compute_loss(self, audio: torch.Tensor) -> CodecLoss:
        """Reconstruction (waveform L1, multi-scale mel, multi-resolution STFT) + commitment losses.

        In train mode the quantizer is the library ResidualVQ (k-means init, EMA, dead codes, quantizer
        dropout); in eval mode the deterministic nearest-code quantizer with a straight-through estimator.
        """
        audio = self._prepare_audio(audio)
        length = audio.shape[-1]
        latents = self.encode_latents(self._pad_to_hop(audio))
        if self.training:
            with quiet_kmeans_init(self.rvq.layers):
                quantized, codes, commit = self.rvq(latents)
            commit = commit.sum()
        else:
            quantized, codes = self.quantize_latents(latents)
            commit = F.mse_loss(latents, quantized.detach()) * self.config.rq_commitment_weight
            quantized = latents + (quantized - latents).detach()
        recons = self.decode_latents(quantized)[:, :length].float()
        c = self.config
        wave = F.l1_loss(recons, audio)
        mel = self.mel_loss(audio, recons)
        stft = self.stft_loss(audio, recons)
        loss = (c.wave_loss_weight * wave + c.mel_loss_weight * mel + c.stft_loss_weight * stft
                + c.commitment_loss_weight * commit)
        breakdown = {"wave": float(wave.detach()), "mel": float(mel.detach()), "stft": float(stft.detach()),
                     "commit": float(commit.detach()), "total": float(loss.detach())}
        return CodecLoss(loss=loss, breakdown=breakdown, recons=recons, codes=codes)

    def forward(self, audio: torch.Tensor, return_loss_breakdown: bool = False, return_recons_only: bool = False):
        """Training: audio (B, T) -> loss, or (loss, breakdown dict) with `return_loss_breakdown`.

        `return_recons_only=True` returns the (B, T) reconstruction instead (eval: deterministic codes).
        """
        if return_recons_only:
            audio = self._prepare_audio(audio)
            latents = self.encode_latents(self._pad_to_hop(audio))
            quantized, _ = self.quantize_latents(latents)
            return self.decode_latents(quantized)[:, : audio.shape[-1]]
        out = self.compute_loss(audio)
        return (out.loss, out.breakdown) if return_loss_breakdown else out.loss


__all__ = ["CodecLoss", "SoundStream", "SoundStreamConfig"]

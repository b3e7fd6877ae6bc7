"""The tensor operations `AudioCLIPAligner` is built from: adapter output lengths, resampling a clip's tokens
to a fixed count, the SeamlessM4T (Kaldi) fbank in torch, relative-position attention bias, and a linear that
takes a convolution or split weight. See soundweave.models.aligner."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ShapeError


def conv_out_length(lengths: torch.Tensor, kernel: int, stride: int, padding: int) -> torch.Tensor:
    return torch.div(lengths + 2 * padding - kernel, stride, rounding_mode="floor") + 1


def resample_tokens(hidden: torch.Tensor, lengths: torch.Tensor, out_len: int) -> torch.Tensor:
    """Resample the first `lengths[b]` tokens of each row of `hidden` (B, T, D) to `out_len` tokens.

    A tent kernel centred on each output token, as wide as max(1, lengths / out_len) input tokens:
    linear interpolation when stretching, an anti-aliased average when shrinking. Padding is ignored.
    """
    b, t, _ = hidden.shape
    n = lengths.to(hidden.device, torch.float32).clamp_min(1)[:, None, None]  # (B, 1, 1)
    centres = (torch.arange(out_len, device=hidden.device, dtype=torch.float32)[None, :, None] + 0.5) * n / out_len
    pos = torch.arange(t, device=hidden.device, dtype=torch.float32)[None, None, :] + 0.5  # (1, 1, T)
    width = (n / out_len).clamp_min(1.0)
    weight = (1.0 - (pos - centres).abs() / width).clamp_min(0.0) * (pos < n)  # (B, out_len, T)
    weight = weight / weight.sum(-1, keepdim=True).clamp_min(1e-12)
    return torch.bmm(weight.to(hidden.dtype), hidden)


def kaldi_fbank(waveform: np.ndarray, window: np.ndarray, mel_filters: np.ndarray) -> np.ndarray:
    """SeamlessM4TFeatureExtractor's log-mel fbank of one clip in torch: (T,) float at 16 kHz -> (frames, mels).

    As transformers computes it (Kaldi style): samples scaled to the 16-bit range, 25 ms frames every 10 ms
    without centring, DC removed per frame, pre-emphasis 0.97, Povey window, 512-point power spectrum, mel
    filters, log with a floor of 2^-23. Computed in float64 like the original, returned as float32 like it.
    """
    x = torch.from_numpy(np.asarray(waveform, dtype=np.float32).reshape(-1)).double() * 32768.0
    frame, hop, n_fft = len(window), 160, 512
    if x.numel() < frame:
        return np.zeros((0, mel_filters.shape[1]), dtype=np.float32)
    frames = x.unfold(0, frame, hop)
    frames = frames - frames.mean(dim=1, keepdim=True)
    frames = torch.cat([frames[:, :1] * (1 - 0.97), frames[:, 1:] - 0.97 * frames[:, :-1]], dim=1)
    power = torch.fft.rfft(frames * torch.from_numpy(np.asarray(window, dtype=np.float64)), n=n_fft).abs() ** 2
    mel = power @ torch.from_numpy(np.asarray(mel_filters, dtype=np.float64))
    return mel.clamp(min=1.192092955078125e-07).log().float().numpy()


def relative_key_bias(rel: torch.Tensor, left: int, right: int, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Spread the per-bucket scores `rel` `(B, H, T, left + right + 1)` (bucket m = distance j - i = m - left,
    distances clamped to [-left, right]) into the `(B, H, T, T)` attention bias, in `dtype`.

    Equal to `rel.gather(-1, buckets)` but without reading a (T, T) index per element: each row is written
    as its two clamped constants (one `where`) into a buffer whose columns are shifted by `left`, then the
    band of distinct distances is copied in through a skewed (row stride + 1) view; the result is a view
    of that buffer. ~1.4x faster than gather + cast for (1, 16, 500, 73) on a CPU.
    """
    b, h, t, nb = rel.shape
    if nb != left + right + 1:
        raise ShapeError(f"rel has {nb} buckets, expected left + right + 1 = {left + right + 1}")
    rel = rel.to(dtype or rel.dtype)
    width = t + left + right
    shift = torch.arange(width, device=rel.device)[None, :] - torch.arange(t, device=rel.device)[:, None]
    buffer = torch.where(shift >= nb - 1, rel[..., nb - 1:], rel[..., :1])  # (B, H, T, width)
    buffer.as_strided((b, h, t, nb), (h * t * width, t * width, width + 1, 1)).copy_(rel)
    return buffer[..., left:left + t]


def _float_linear(x: torch.Tensor, weight, bias=None) -> torch.Tensor:
    """F.linear that also takes a pointwise-convolution weight (N, K, 1) or a tuple of weights (and biases),
    whose outputs are concatenated (the float twin of `Int8Linears.linear`)."""
    if isinstance(weight, tuple):
        biases = bias if isinstance(bias, tuple) else (bias,) * len(weight)
        return torch.cat([_float_linear(x, w, b) for w, b in zip(weight, biases, strict=True)], dim=-1)
    return F.linear(x, weight.reshape(weight.shape[0], -1), bias)


__all__ = ["conv_out_length", "kaldi_fbank", "relative_key_bias", "resample_tokens"]

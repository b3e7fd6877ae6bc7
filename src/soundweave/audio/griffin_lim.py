"""Phase reconstruction in torch: mel -> linear magnitude (non-negative least squares) and Griffin-Lim.

Batched over the first axis, runs on any device. `momentum > 0` gives the fast Griffin-Lim of
Perraudin et al. (2013), which is also what librosa uses by default (momentum 0.99).
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

from .mel import stft


def mel_to_linear(mel: torch.Tensor, filters: torch.Tensor, n_iter: int = 10, eps: float = 1e-10,
                  pinv: torch.Tensor | None = None) -> torch.Tensor:
    """Non-negative `S` with `filters @ S ~= mel`: `(B, M, T)` -> `(B, F, T)`.

    Starts from the clamped pseudo-inverse and refines with multiplicative NNLS updates
    (Lee & Seung), which keep every entry non-negative. `pinv` may pass a cached pseudo-inverse.
    The refinement multiplies by the filterbank in compressed sparse rows: a mel filter covers a few FFT
    bins, so this is about ten times faster than the dense product.
    """
    fb = filters.to(mel)
    pinv = torch.linalg.pinv(fb) if pinv is None else pinv.to(mel)
    B, M, T = mel.shape
    columns = mel.transpose(0, 1).reshape(M, B * T)  # every item's frames side by side: (M, B * T)
    spec = torch.matmul(pinv, columns).clamp_min(0)
    level = mel.amax(dim=(-2, -1)).repeat_interleave(T)[None]  # each item's own peak, per column
    spec = spec + level * 1e-8 + eps
    if n_iter > 0:
        with warnings.catch_warnings():  # "sparse CSR support is in beta": the products used here are stable
            warnings.simplefilter("ignore", UserWarning)
            sparse, sparse_t = fb.to_sparse_csr(), fb.t().contiguous().to_sparse_csr()
        numer = sparse_t @ columns
        for _ in range(n_iter):  # filters^T (filters S): two thin sparse products instead of one F x F gram product
            spec = spec * numer / (sparse_t @ (sparse @ spec) + eps)
    return spec.reshape(-1, B, T).transpose(0, 1)


class _InverseSTFT:
    """Inverse of `stft(center=True)` for a fixed window/hop/frame count, with the window envelope cached.

    irfft per frame, window, overlap-add, divide by the summed squared window. When the hop divides n_fft
    (the usual case) the overlap-add is n_fft / hop shifted additions of hop-sized blocks, which is several
    times faster on CPU than `torch.istft` (that recomputes the envelope on every call) or `fold`.
    """

    def __init__(self, n_fft: int, hop_length: int, window: torch.Tensor, frames: int, length: int):
        self.n_fft, self.hop, self.window, self.frames, self.length = n_fft, hop_length, window, frames, length
        self.full = n_fft + hop_length * (frames - 1)
        envelope = self._overlap_add(window.pow(2).expand(1, frames, n_fft))[0]
        self.inv_envelope = torch.where(envelope > 1e-11, 1.0 / envelope, torch.zeros_like(envelope))

    def _overlap_add(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, n_fft) -> (B, n_fft + hop * (T - 1))."""
        b, t, n = frames.shape
        if n % self.hop:
            folded = F.fold(frames.transpose(1, 2), (1, self.full), (1, n), stride=(1, self.hop))
            return folded.reshape(b, -1)
        ratio = n // self.hop
        blocks = frames.reshape(b, t, ratio, self.hop)
        out = frames.new_zeros(b, t + ratio - 1, self.hop)
        for r in range(ratio):
            out[:, r : r + t] += blocks[:, :, r]
        return out.reshape(b, -1)

    def __call__(self, spec: torch.Tensor) -> torch.Tensor:
        """spec (B, n_fft // 2 + 1, T) complex -> audio (B, length)."""
        frames = torch.fft.irfft(spec.transpose(1, 2), n=self.n_fft, dim=-1) * self.window
        audio = self._overlap_add(frames) * self.inv_envelope
        start = self.n_fft // 2
        return audio[:, start : start + self.length]


def griffin_lim(magnitude: torch.Tensor, n_fft: int, hop_length: int, win_length: int | None = None,
                n_iter: int = 32, momentum: float = 0.99, length: int | None = None,
                generator: torch.Generator | None = None, init: str = "random") -> torch.Tensor:
    """Waveform whose STFT magnitude approximates `magnitude` `(B, F, T)` -> `(B, samples)`.

    samples = (T - 1) * hop_length unless `length` is given. `init='random'` draws phases from
    `generator` (seedable); `init='zeros'` starts from zero phase.
    """
    squeeze = magnitude.ndim == 2
    mag = magnitude[None] if squeeze else magnitude
    win_length = win_length or n_fft
    window = torch.hann_window(win_length, device=mag.device, dtype=mag.dtype)
    if init == "random":
        phase = torch.rand(mag.shape, generator=generator, device=generator.device if generator else mag.device)
        angles = torch.polar(torch.ones_like(mag), 2 * torch.pi * phase.to(mag))
    elif init == "zeros":
        angles = torch.ones_like(mag, dtype=torch.complex64 if mag.dtype != torch.float64 else torch.complex128)
    else:
        raise ValueError(f"init must be 'random' or 'zeros', got {init!r}")
    out_len = length or (mag.shape[-1] - 1) * hop_length
    if win_length != n_fft:
        window = F.pad(window, ((n_fft - win_length) // 2, n_fft - win_length - (n_fft - win_length) // 2))
    istft = _InverseSTFT(n_fft, hop_length, window, mag.shape[-1], out_len)
    rebuilt = torch.zeros_like(angles)
    factor = momentum / (1 + momentum)
    for _ in range(n_iter):
        previous = rebuilt
        audio = istft(mag * angles)
        rebuilt = stft(audio, n_fft, hop_length, n_fft, center=True, pad_mode="constant", window=window)
        angles = rebuilt - factor * previous
        angles = angles / (angles.abs() + 1e-16)
    audio = istft(mag * angles)
    return audio[0] if squeeze else audio


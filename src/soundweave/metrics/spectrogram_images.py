"""Statistics of spectrogram images (uint8 `(B, H, W)`, pixels = log-mel dB) used to watch and prove that a
mel-diffusion model learns: the mean per-mel-row profile and its distance, per-image log-mel features, and the
Frechet distance between two feature sets (as in FID / FAD)."""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError


def spectrogram_profile(images) -> np.ndarray:
    """Mean brightness of every mel row over a set of uint8 images `(B, H, W)` -> `(H,)` in 0..1."""
    x = np.asarray(images, dtype=np.float64) / 255.0
    if x.ndim == 2:
        x = x[None]
    return x.mean(axis=(0, 2))


def profile_distance(images_a, images_b) -> float:
    """RMS difference of the mean per-mel-bin energy profiles of two image sets (0 = identical; 0..1)."""
    return float(np.sqrt(np.mean((spectrogram_profile(images_a) - spectrogram_profile(images_b)) ** 2)))


def log_mel_features(images) -> np.ndarray:
    """Per image: mean and std over time of each mel row (pixels are log-mel dB), `(B, 2H)`."""
    x = np.asarray(images, dtype=np.float64) / 255.0
    if x.ndim == 2:
        x = x[None]
    return np.concatenate([x.mean(axis=2), x.std(axis=2)], axis=1)


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets `(N, D)` (as in FID/FAD)."""
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ConfigError("frechet_distance needs two (N>=2, D) feature sets with the same D, "
                          f"got {a.shape} and {b.shape}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # trace of sqrt(cov_a cov_b) from the eigenvalues of sqrt(A) B sqrt(A) (symmetric, so eigh is stable)
    vals, vecs = np.linalg.eigh(cov_a)
    sqrt_a = (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T
    middle = np.linalg.eigvalsh(sqrt_a @ cov_b @ sqrt_a)
    trace_sqrt = np.sqrt(np.clip(middle, 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_sqrt)


__all__ = ["frechet_distance", "log_mel_features", "profile_distance", "spectrogram_profile"]

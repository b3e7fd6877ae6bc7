"""Metrics: retrieval recall, SI-SDR, spectral convergence, mel distance."""

from .audio import mel_distance, si_sdr, spectral_convergence
from .retrieval import median_rank, recall_at_k

__all__ = ["mel_distance", "median_rank", "recall_at_k", "si_sdr", "spectral_convergence"]

"""Metrics: retrieval recall, SI-SDR, spectral convergence, mel distance, codebook usage."""

from .audio import mel_distance, si_sdr, spectral_convergence
from .codes import code_usage
from .retrieval import median_rank, recall_at_k

__all__ = ["code_usage", "mel_distance", "median_rank", "recall_at_k", "si_sdr", "spectral_convergence"]

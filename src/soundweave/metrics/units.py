"""How well discrete units (k-means ids) capture reference frame labels: code usage, purity, PNMI.

    usage = code_usage_stats(ids, codebook_size)           # share of codes used, perplexity
    scores = unit_label_scores(units, labels)              # {"purity", "pnmi", ...}

Purity: the share of frames whose unit's most frequent label is their own label. PNMI (phone-normalised
mutual information, as HuBERT reports it): I(label; unit) / H(label), 0 = units say nothing about the
label, 1 = units determine it.
"""

from __future__ import annotations

import math

import torch

from ..errors import ShapeError


def code_usage_stats(ids: torch.Tensor, codebook_size: int) -> dict[str, float]:
    """Share of the codebook in use and the perplexity of the unit distribution."""
    ids = torch.as_tensor(ids).reshape(-1).long()
    if ids.numel() == 0:
        raise ShapeError("no unit ids to measure")
    counts = torch.bincount(ids, minlength=codebook_size).double()
    p = counts / counts.sum()
    entropy = float(-(p[p > 0] * p[p > 0].log()).sum())
    return {"code_usage": float((counts > 0).double().mean()), "perplexity": math.exp(entropy)}


def unit_label_scores(units: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Purity (unit -> majority label), label purity (label -> majority unit) and PNMI of frame-aligned
    units and integer labels (same length; label < 0 = no label, skipped)."""
    units, labels = torch.as_tensor(units).reshape(-1).long(), torch.as_tensor(labels).reshape(-1).long()
    if units.shape != labels.shape:
        raise ShapeError(f"units ({units.numel()}) and labels ({labels.numel()}) must be frame-aligned")
    keep = labels >= 0
    units, labels = units[keep], labels[keep]
    if units.numel() == 0:
        raise ShapeError("no labelled frames")
    _, u = units.unique(return_inverse=True)
    _, y = labels.unique(return_inverse=True)
    joint = torch.zeros(int(u.max()) + 1, int(y.max()) + 1, dtype=torch.float64)
    joint.index_put_((u, y), torch.ones_like(u, dtype=torch.float64), accumulate=True)
    joint /= joint.sum()
    pu, py = joint.sum(1, keepdim=True), joint.sum(0, keepdim=True)
    nz = joint > 0
    mi = float((joint[nz] * (joint[nz] / (pu @ py)[nz]).log()).sum())
    hy = float(-(py[py > 0] * py[py > 0].log()).sum())
    return {"purity": float(joint.max(1).values.sum()), "label_purity": float(joint.max(0).values.sum()),
            "pnmi": mi / hy if hy > 0 else 0.0, "frames": int(units.numel())}


__all__ = ["code_usage_stats", "unit_label_scores"]

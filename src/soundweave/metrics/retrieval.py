"""Retrieval metrics over a similarity matrix."""

from __future__ import annotations

import torch


def recall_at_k(similarity: torch.Tensor, ks: tuple[int, ...] = (1, 5, 10),
                targets: torch.Tensor | None = None) -> dict[str, float]:
    """Recall@k for queries (rows) against items (columns) of `similarity` `(Q, N)`.

    `targets[i]` is the correct column for row i (default: i). Ties count against the query
    (the correct item must score strictly higher than all but k-1 others).
    """
    q = similarity.shape[0]
    if targets is None:
        targets = torch.arange(q, device=similarity.device)
    correct = similarity.gather(1, targets[:, None])
    rank = (similarity > correct).sum(dim=1)  # 0 = best
    return {f"R@{k}": float((rank < k).float().mean()) for k in ks}


def median_rank(similarity: torch.Tensor) -> float:
    correct = similarity.diagonal()[:, None]
    rank = (similarity > correct).sum(dim=1) + 1
    return float(rank.float().median())

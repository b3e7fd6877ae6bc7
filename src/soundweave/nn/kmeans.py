"""k-means in torch: k-means++ seeding (in batched rounds) on a sample, then Lloyd iterations over all points
(chunked), and residual k-means (one codebook per level, each fitted on what the previous levels left).

    centroids = kmeans(points (n, d), k=1024, iters=10, generator=g)         # (k, d)
    codebooks = residual_kmeans(points, levels=8, k=1024, generator=g)       # (levels, k, d)
    ids = nearest(points, centroids)                                          # (n,) int64

Empty clusters are re-seeded with the points farthest from their centroids, so every code ends up used.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError


def nearest(points: torch.Tensor, centroids: torch.Tensor, chunk: int = 16384) -> torch.Tensor:
    """Index of the nearest centroid (squared Euclidean) for each of `points` (n, d) -> (n,) int64."""
    sq = centroids.pow(2).sum(-1)
    transposed = centroids.t().contiguous()
    out = []
    for start in range(0, points.shape[0], chunk):
        # |c|^2 - 2 p.c in one fused multiply-add (the |p|^2 term does not change the argmin)
        out.append(torch.addmm(sq, points[start: start + chunk], transposed, beta=1, alpha=-2).argmin(dim=-1))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long, device=points.device)


def _plus_plus(points: torch.Tensor, k: int, generator: torch.Generator | None, rounds: int = 8) -> torch.Tensor:
    """k-means++ seeding in a few rounds (in the spirit of k-means||, Bahmani et al. 2012): each round draws a
    batch of new centres with probability proportional to the squared distance to the centres so far - a
    handful of large tensor operations instead of k small ones."""
    n = points.shape[0]
    chosen = torch.randint(n, (1,), generator=generator)
    dist = (points - points[chosen]).pow(2).sum(-1)
    per_round = max(1, -(-(k - 1) // rounds))
    while chosen.numel() < k:
        take = min(per_round, k - chosen.numel())
        weights = dist.clamp_min(0)
        if float(weights.sum()) <= 0:  # fewer distinct points than k: the rest are random points
            new = torch.randint(n, (take,), generator=generator)
        else:
            new = torch.multinomial(weights, min(take, int((weights > 0).sum())), replacement=False,
                                    generator=generator)
        chosen = torch.cat([chosen, new])
        new_points = points[new]
        dist = torch.minimum(dist, (points.pow(2).sum(-1, keepdim=True) - 2 * points @ new_points.t()
                                    + new_points.pow(2).sum(-1)[None]).amin(dim=-1))
    return points[chosen[:k]].clone()


def _seeded(points: torch.Tensor, k: int, sample: int, generator: torch.Generator | None
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Checked float points and k-means++ initial centroids drawn from up to `sample` of them."""
    if points.ndim != 2 or points.shape[0] == 0:
        raise ConfigError(f"k-means needs a non-empty (n, d) array of points, got shape {tuple(points.shape)}")
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}")
    points = points.float()
    n = points.shape[0]
    seed_points = points if n <= sample else points[torch.randperm(n, generator=generator)[:sample]]
    return points, _plus_plus(seed_points, k, generator)


def kmeans(points: torch.Tensor, k: int, iters: int = 10, sample: int = 20000,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """Centroids (k, d) of `points` (n, d): k-means++ seeding on up to `sample` points, then `iters` Lloyd steps."""
    points, centroids = _seeded(points, k, sample, generator)
    n = points.shape[0]
    for _ in range(iters):
        ids = nearest(points, centroids)
        sums = torch.zeros_like(centroids).index_add_(0, ids, points)
        counts = torch.bincount(ids, minlength=k).to(points)
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled, None]
        empty = (~filled).nonzero().flatten()
        if empty.numel():  # re-seed empty clusters with the worst-served points
            error = (points - centroids[ids]).pow(2).sum(-1)
            worst = error.topk(min(empty.numel(), n)).indices
            centroids[empty[: worst.numel()]] = points[worst]
    return centroids


def residual_kmeans(points: torch.Tensor, levels: int, k: int, iters: int = 10, sample: int = 20000,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Codebooks (levels, k, d): level l is k-means of the residual left by levels 0..l-1."""
    residual = points.float().clone()
    books = []
    for _ in range(levels):
        book = kmeans(residual, k, iters, sample, generator)
        residual = residual - book[nearest(residual, book)]
        books.append(book)
    return torch.stack(books)


def minibatch_kmeans(points: torch.Tensor, k: int, iters: int = 100, batch_size: int = 10000, sample: int = 20000,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Mini-batch k-means (Sculley 2010): k-means++ seeding on up to `sample` points, then `iters` batches of
    `batch_size` points, each moving its centroids by a per-centroid learning rate 1 / (points seen so far);
    centroids no batch has touched are re-seeded from the batch. -> (k, d)."""
    points, centroids = _seeded(points, k, sample, generator)
    n = points.shape[0]
    counts = torch.zeros(k)
    for _ in range(iters):
        batch = points if n <= batch_size else points[torch.randint(n, (batch_size,), generator=generator)]
        ids = nearest(batch, centroids)
        sums = torch.zeros_like(centroids).index_add_(0, ids, batch)
        seen = torch.bincount(ids, minlength=k).float()
        counts += seen
        hit = seen > 0
        # c <- c + (mean_batch - c) * seen / counts: the running mean of every point assigned so far
        rate = (seen[hit] / counts[hit])[:, None]
        centroids[hit] += (sums[hit] / seen[hit, None] - centroids[hit]) * rate
    dead = (counts == 0).nonzero().flatten()
    if dead.numel():  # never chosen: re-seed with the worst-served points
        error = (points - centroids[nearest(points, centroids)]).pow(2).sum(-1)
        worst = error.topk(min(dead.numel(), n)).indices
        centroids[dead[: worst.numel()]] = points[worst]
    return centroids


__all__ = ["kmeans", "minibatch_kmeans", "nearest", "residual_kmeans"]

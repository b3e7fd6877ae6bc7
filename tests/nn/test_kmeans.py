"""k-means: finds separated clusters, residual levels reduce the error, every code gets used, bad input is clear."""

import pytest
import torch

from soundweave.errors import ConfigError
from soundweave.nn.kmeans import kmeans, nearest, residual_kmeans


def blobs(k: int = 8, per: int = 200, dim: int = 4, spread: float = 0.05, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(k, dim, generator=g) * 3
    points = centres.repeat_interleave(per, 0) + spread * torch.randn(k * per, dim, generator=g)
    return points, centres


def test_kmeans_finds_separated_clusters():
    points, centres = blobs()
    found = kmeans(points, 8, iters=10, generator=torch.Generator().manual_seed(1))
    # every true centre has a found centroid within a few spreads, and each point's cluster is one blob
    nearest_found = torch.cdist(centres, found).min(dim=1).values
    assert nearest_found.max() < 0.1, nearest_found
    ids = nearest(points, found)
    assert all(ids[i * 200:(i + 1) * 200].unique().numel() == 1 for i in range(8))


def test_nearest_matches_a_brute_force_search():
    g = torch.Generator().manual_seed(0)
    points, book = torch.randn(1000, 6, generator=g), torch.randn(50, 6, generator=g)
    assert torch.equal(nearest(points, book, chunk=128), torch.cdist(points, book).argmin(dim=1))


def test_residual_levels_reduce_the_error_and_use_every_code():
    g = torch.Generator().manual_seed(0)
    points = torch.randn(4000, 16, generator=g)
    books = residual_kmeans(points, levels=4, k=32, iters=8, generator=torch.Generator().manual_seed(0))
    assert books.shape == (4, 32, 16)
    residual, errors = points.clone(), []
    for book in books:
        ids = nearest(residual, book)
        assert ids.unique().numel() == 32  # empty clusters are re-seeded: no dead codes
        residual = residual - book[ids]
        errors.append(float(residual.pow(2).mean()))
    assert all(b < a for a, b in zip(errors, errors[1:], strict=False)), errors
    assert errors[-1] < 0.6 * float(points.pow(2).mean())


def test_more_centres_than_distinct_points_still_works():
    points = torch.tensor([[0.0, 0.0], [1.0, 1.0]]).repeat(10, 1)
    found = kmeans(points, 5, iters=3, generator=torch.Generator().manual_seed(0))
    assert found.shape == (5, 2) and torch.isfinite(found).all()


def test_bad_input():
    with pytest.raises(ConfigError):
        kmeans(torch.zeros(0, 3), 4)
    with pytest.raises(ConfigError):
        kmeans(torch.zeros(10), 4)
    with pytest.raises(ConfigError):
        kmeans(torch.zeros(10, 3), 0)

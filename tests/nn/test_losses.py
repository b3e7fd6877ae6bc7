"""contrastive_loss: the published per-token formula, options, and bad input."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from soundweave import contrastive_loss
from soundweave.errors import ConfigError, ShapeError
from soundweave.nn.losses import per_token_cosine, regression_loss
from tests.helpers import check_margin

pytestmark = pytest.mark.usefixtures("one_thread")



def reference(audio, text, temperature):
    """The formula written out position by position: CE over cosines to every text at that position."""
    b, length, _ = audio.shape
    total = 0.0
    for pos in range(length):
        logits = F.cosine_similarity(audio[:, pos, None, :], text[None, :, pos, :], dim=-1) / temperature
        total = total + F.cross_entropy(logits, torch.arange(b))
    return total / length


def test_matches_the_per_position_formula():
    audio, text = torch.randn(4, 5, 8), torch.randn(4, 5, 8)
    torch.testing.assert_close(contrastive_loss(audio, text, 0.15), reference(audio, text, 0.15))


def test_perfect_alignment_is_low_and_random_is_near_chance():
    text = torch.randn(8, 6, 32)
    check_margin("losses.perfect_alignment.loss", float(contrastive_loss(text.clone(), text, 0.05)), 0.01)
    random = contrastive_loss(torch.randn(8, 6, 32), text, temperature=100.0)
    check_margin("losses.random_pairs.abs_gap_to_ln8", abs(float(random) - math.log(8)), 0.05)


def test_extra_negatives_and_duplicate_captions():
    text = torch.randn(10, 4, 16)
    audio = text[:3] + 0.1 * torch.randn(3, 4, 16)
    more = contrastive_loss(audio, text, 0.15)  # 7 extra negatives beyond the 3 pairs
    fewer = contrastive_loss(audio, text[:3], 0.15)
    check_margin("losses.extra_negatives.loss_vs_fewer_negatives", float(more), float(fewer) - 1e-6, above=True)
    # two audios of the same caption point at one row: never each other's negative
    pooled = torch.stack([text[0], text[1]])
    dup = contrastive_loss(torch.stack([text[0], text[0], text[1]]), pooled, 0.05, targets=torch.tensor([0, 0, 1]))
    check_margin("losses.duplicate_captions.loss", float(dup), 0.01)


def test_symmetric_mask_and_regression():
    audio, text = torch.randn(4, 5, 8, requires_grad=True), torch.randn(4, 5, 8)
    sym = contrastive_loss(audio, text, 0.15, symmetric=True)
    back = reference(text, audio.detach(), 0.15)  # text -> audio direction alone
    torch.testing.assert_close(sym.detach(), 0.5 * (reference(audio.detach(), text, 0.15) + back))
    mask = torch.tensor([0, 1, 1, 1, 1])
    masked = contrastive_loss(audio, text, 0.15, mask=mask)
    torch.testing.assert_close(masked.detach(), reference(audio.detach()[:, 1:], text[:, 1:], 0.15))
    with_mse = contrastive_loss(audio, text, 0.15, regression="mse", regression_weight=2.0)
    torch.testing.assert_close(with_mse.detach(), contrastive_loss(audio, text, 0.15).detach()
                               + 2.0 * (audio.detach() - text).pow(2).mean())
    with_mse.backward()
    assert audio.grad is not None and torch.isfinite(audio.grad).all()
    assert per_token_cosine(text, text).shape == (4, 5)
    torch.testing.assert_close(regression_loss(text, text, "cosine"), torch.tensor(0.0), atol=1e-6, rtol=0)


def test_optimising_the_loss_aligns_sequences():
    torch.manual_seed(0)
    text = torch.randn(6, 4, 16)
    audio = torch.randn(6, 4, 16, requires_grad=True)
    opt = torch.optim.Adam([audio], lr=0.05)
    first = None
    for _ in range(100):
        loss = contrastive_loss(audio, text)
        first = first if first is not None else float(loss.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    check_margin("losses.optimised.last_loss_vs_0.2_first", float(loss.detach()), 0.2 * first)
    # contrastive only asks each audio to be nearer its own text than the others: cosines rise from ~0
    check_margin("losses.optimised.mean_cosine", float(per_token_cosine(audio.detach(), text).mean()), 0.5, above=True)


def test_bad_input():
    with pytest.raises(ShapeError):
        contrastive_loss(torch.randn(2, 3, 4), torch.randn(2, 3, 5))
    with pytest.raises(ShapeError):
        contrastive_loss(torch.randn(2, 3), torch.randn(2, 3))
    with pytest.raises(ShapeError):
        contrastive_loss(torch.randn(3, 3, 4), torch.randn(2, 3, 4))
    with pytest.raises(ConfigError):
        contrastive_loss(torch.randn(2, 3, 4), torch.randn(2, 3, 4), temperature=0.0)
    with pytest.raises(ConfigError):
        contrastive_loss(torch.randn(2, 3, 4), torch.randn(2, 3, 4), symmetric=True, targets=torch.tensor([0, 0]))
    with pytest.raises(ConfigError):
        contrastive_loss(torch.randn(2, 3, 4), torch.randn(2, 3, 4), regression="l1")

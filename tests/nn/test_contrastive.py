import math

import pytest
import torch
import torch.nn.functional as F

from soundweave.errors import ConfigError, ShapeError
from soundweave.nn.contrastive import (
    ContrastiveLoss,
    contrastive,
    decoupled_contrastive,
    sigmoid_contrastive,
    symmetric_infonce,
)


def test_infonce_matches_manual_cross_entropy():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 5, generator=g)
    target = torch.arange(5)
    manual = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))
    assert torch.allclose(symmetric_infonce(logits), manual)
    # explicit formula for one row
    row0 = -(logits[0, 0] - torch.logsumexp(logits[0], 0))
    assert torch.allclose(F.cross_entropy(logits[:1], target[:1]), row0)


def test_infonce_chance_and_perfect():
    assert symmetric_infonce(torch.zeros(8, 8)).item() == pytest.approx(math.log(8))
    assert symmetric_infonce(torch.eye(8) * 50).item() < 1e-6


def test_decoupled_removes_positive_from_denominator():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(4, 4, generator=g)
    i = 2
    negatives = torch.cat([logits[i, :i], logits[i, i + 1 :]])
    row = torch.logsumexp(negatives, 0) - logits[i, i]
    rows = torch.stack(
        [torch.logsumexp(torch.cat([logits[r, :r], logits[r, r + 1 :]]), 0) - logits[r, r] for r in range(4)]
    )
    cols = torch.stack(
        [torch.logsumexp(torch.cat([logits[:c, c], logits[c + 1 :, c]]), 0) - logits[c, c] for c in range(4)]
    )
    assert torch.allclose(rows[i], row)
    assert torch.allclose(decoupled_contrastive(logits), 0.5 * (rows.mean() + cols.mean()), atol=1e-6)
    # unlike InfoNCE it is not bounded below by 0: a confident positive drives it negative
    assert decoupled_contrastive(torch.eye(4) * 20).item() < 0
    assert decoupled_contrastive(torch.tensor([[3.0]])).item() == pytest.approx(-3.0)


def test_sigmoid_matches_manual():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(3, 3, generator=g)
    manual = 0.0
    for r in range(3):
        for c in range(3):
            z = 1.0 if r == c else -1.0
            manual += -F.logsigmoid(torch.tensor(z) * logits[r, c])
    assert torch.allclose(sigmoid_contrastive(logits), manual / 3)


def test_contrastive_module_temperature_and_bias_learn():
    loss_fn = ContrastiveLoss("sigmoid", temperature_init=10.0, bias_init=-10.0)
    assert loss_fn.scale.item() == pytest.approx(10.0)
    a = F.normalize(torch.randn(6, 16), dim=-1)
    loss = loss_fn(a, a)
    loss.backward()
    assert loss_fn.log_scale.grad is not None and loss_fn.bias.grad is not None
    soft = ContrastiveLoss("infonce")
    assert not soft.bias.requires_grad  # the bias only exists for the sigmoid loss
    logits = soft.logits(a, a)
    assert torch.allclose(logits, 10.0 * a @ a.t(), atol=1e-5)
    soft.log_scale.data.fill_(10.0)  # clamp: scale never exceeds max_scale
    assert soft.scale.item() == pytest.approx(100.0)


def test_bad_inputs():
    with pytest.raises(ShapeError):
        symmetric_infonce(torch.zeros(3, 4))
    with pytest.raises(ConfigError):
        contrastive(torch.zeros(2, 2), "triplet")
    with pytest.raises(ConfigError):
        ContrastiveLoss("nope")
    with pytest.raises(ShapeError):
        ContrastiveLoss()(torch.zeros(3, 8), torch.zeros(2, 8))
    with pytest.raises(ShapeError):
        ContrastiveLoss()(torch.zeros(3, 8), torch.zeros(3, 4))


def test_micro_batch_accumulation_is_mean_of_micro_batch_losses():
    """What the Trainer's grad_accum means for negatives: each micro-batch is its own problem."""
    g = torch.Generator().manual_seed(3)
    q = torch.randn(8, 4, generator=g, requires_grad=True)
    k = torch.randn(8, 4, generator=g)
    accumulated = 0
    for sl in (slice(0, 4), slice(4, 8)):
        part = symmetric_infonce(q[sl] @ k[sl].t()) / 2
        part.backward()
        accumulated = accumulated + part.detach()
    grad_acc = q.grad.clone()
    q.grad = None
    full = symmetric_infonce(q @ k.t())
    full.backward()
    assert not torch.allclose(grad_acc, q.grad)  # fewer negatives: a different objective
    q.grad = None
    mean_of_parts = 0.5 * (symmetric_infonce(q[:4] @ k[:4].t()) + symmetric_infonce(q[4:] @ k[4:].t()))
    mean_of_parts.backward()
    assert torch.allclose(grad_acc, q.grad, atol=1e-6)
    assert torch.allclose(accumulated, mean_of_parts.detach())

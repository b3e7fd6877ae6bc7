"""Conformer: shapes, padding safety (attention and depthwise conv), causal conv, conditioning."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from soundweave import Conformer
from soundweave.errors import ConfigError, ShapeError
from soundweave.nn.conformer import ConformerBlock, ConformerConvModule


def tiny(**kw):
    return Conformer(**{"dim": 32, "depth": 2, "heads": 2, "dim_head": 16, **kw}).eval()


def test_shapes_gradients_and_no_batchnorm():
    model = tiny()
    x = torch.randn(3, 17, 32, requires_grad=True)
    y = model(x)
    assert y.shape == (3, 17, 32)
    y.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    block = model.layers[0]
    assert isinstance(block, ConformerBlock)
    depthwise = block.conv.depthwise
    assert isinstance(depthwise, nn.Conv1d) and depthwise.groups == depthwise.in_channels
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert model(x).shape == (3, 17, 32)


def test_padded_items_match_the_unpadded_item_and_ignore_padding_content():
    model = tiny(conv_kernel_size=7)
    short = torch.randn(1, 9, 32)
    alone = model(short)
    padded = torch.cat([short, torch.randn(1, 6, 32)], dim=1)
    mask = torch.zeros(1, 15, dtype=torch.bool)
    mask[:, :9] = True
    out = model(padded, mask=mask)
    torch.testing.assert_close(out[:, :9], alone, atol=1e-5, rtol=1e-5)
    junk = padded.clone()
    junk[:, 9:] = torch.randn(1, 6, 32) * 100
    torch.testing.assert_close(model(junk, mask=mask)[:, :9], out[:, :9], atol=1e-5, rtol=1e-5)


def test_conv_module_zeroes_padding_before_the_depthwise_conv():
    conv = ConformerConvModule(8, kernel_size=5).eval()
    x = torch.randn(2, 12, 8)
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[:, 8:] = False
    y = x.clone()
    y[:, 8:] = 1e3
    torch.testing.assert_close(conv(x, mask)[:, :8], conv(y, mask)[:, :8])
    # without the mask the padding leaks into the last real frames (kernel 5 reaches 2 frames ahead)
    assert not torch.allclose(conv(x)[:, 6:8], conv(y)[:, 6:8])


def test_causal_conv_never_looks_ahead():
    conv = ConformerConvModule(8, kernel_size=5, causal=True).eval()
    x = torch.randn(1, 10, 8)
    y = x.clone()
    y[:, 6:] = torch.randn(1, 4, 8)
    torch.testing.assert_close(conv(x)[:, :6], conv(y)[:, :6])


def test_fully_padded_item_is_finite():
    model = tiny()
    mask = torch.zeros(2, 5, dtype=torch.bool)
    mask[0] = True
    assert torch.isfinite(model(torch.randn(2, 5, 32), mask=mask)).all()


@pytest.mark.parametrize("mode", ["adaln", "cross"])
def test_global_conditioning_changes_the_output(mode):
    model = tiny(cond_dim=6, cond_mode=mode)
    for p in model.parameters():  # make the zero-initialised modulation active
        if p.ndim and not p.any():
            nn.init.normal_(p, std=0.1)
    x = torch.randn(2, 7, 32)
    c1, c2 = torch.randn(2, 3, 6), torch.randn(2, 3, 6)
    assert not torch.allclose(model(x, cond=c1), model(x, cond=c2))
    # masked conditioning tokens do not matter
    cond_mask = torch.tensor([[True, True, False], [True, False, False]])
    c3 = c1.clone()
    c3[:, 2] = 50.0
    c3[1, 1] = -50.0
    torch.testing.assert_close(model(x, cond=c1, cond_mask=cond_mask), model(x, cond=c3, cond_mask=cond_mask))
    assert model(x, cond=torch.randn(2, 6)).shape == (2, 7, 32)


def test_adaln_starts_as_the_unconditioned_model():
    model = tiny(cond_dim=6)
    x = torch.randn(2, 7, 32)
    torch.testing.assert_close(model(x, cond=torch.randn(2, 4, 6)), model(x))


def test_bad_inputs_and_configs_raise():
    model = tiny()
    with pytest.raises(ShapeError):
        model(torch.randn(2, 5, 31))
    with pytest.raises(ShapeError):
        model(torch.randn(2, 5, 32), mask=torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ShapeError):
        model(torch.randn(2, 5, 32), mask=torch.ones(2, 5))
    with pytest.raises(ConfigError):
        model(torch.randn(2, 5, 32), cond=torch.randn(2, 6))
    with pytest.raises(ShapeError):
        tiny(cond_dim=6)(torch.randn(2, 5, 32), cond=torch.randn(2, 3, 5))
    with pytest.raises(ConfigError):
        Conformer(dim=32, depth=0)
    with pytest.raises(ConfigError):
        Conformer(dim=32, depth=1, cond_dim=4, cond_mode="film")


def test_inference_leaves_the_input_alone_and_matches_training_mode_math():
    torch.manual_seed(0)
    model = Conformer(dim=32, depth=2, heads=2, dim_head=16).eval()
    x = torch.randn(2, 9, 32)
    keep = x.clone()
    with torch.no_grad():
        fast = model(x)  # no autograd: residual sums in place, SiLU in place
    assert torch.equal(x, keep)
    slow = model(x)  # autograd on: out-of-place
    torch.testing.assert_close(fast, slow.detach(), atol=1e-6, rtol=1e-6)
    slow.sum().backward()  # and the graph is intact

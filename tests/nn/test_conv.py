from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from soundweave.nn.conv import depthwise_conv_time_last


@pytest.mark.parametrize("padding", [(0, 0), (4, 0), (2, 2), (1, 3)])
@pytest.mark.parametrize("bias", [True, False])
def test_depthwise_conv_time_last_equals_conv1d_on_the_transpose(padding, bias):
    torch.manual_seed(0)
    conv = torch.nn.Conv1d(6, 6, 5, groups=6, bias=bias)
    x = torch.randn(3, 17, 6)
    ref = conv(F.pad(x.transpose(1, 2), padding)).transpose(1, 2)
    out = depthwise_conv_time_last(x, conv.weight, conv.bias, padding)
    assert out.shape == ref.shape == (3, 17 + sum(padding) - 4, 6)
    assert out.is_contiguous()
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    # gradients flow to the input and the weight like conv1d's
    x.requires_grad_(True)
    depthwise_conv_time_last(x, conv.weight, conv.bias, padding).square().sum().backward()
    assert x.grad is not None and conv.weight.grad is not None and x.grad.abs().sum() > 0

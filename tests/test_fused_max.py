"""The fused last layer (linear -> BN -> ReLU -> max over k) against plain autograd."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cp_plugin import fused_max
from cp_plugin.fused_max import linear_bn_relu_max


def plain(x, weight, norm):
    z = x if weight is None else F.linear(x, weight)
    return F.relu(norm(z.reshape(-1, z.shape[-1])).view(z.shape)).amax(dim=1)


def norm_with_both_signs(channels, momentum=0.1, seed=0):
    gen = torch.Generator().manual_seed(seed)
    norm = nn.BatchNorm1d(channels, momentum=momentum).double()
    with torch.no_grad():
        norm.weight.copy_(torch.randn(channels, generator=gen))
        norm.bias.copy_(torch.randn(channels, generator=gen) * 0.3)
        norm.running_mean.copy_(torch.randn(channels, generator=gen))
        norm.running_var.copy_(torch.rand(channels, generator=gen) + 0.5)
    return norm


@pytest.mark.parametrize("with_weight", [True, False])
@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_matches_autograd_across_many_chunks(monkeypatch, with_weight, train, momentum):
    monkeypatch.setattr(fused_max, "CHUNK_ELEMENTS", 37)  # uneven chunks of one or a few rows
    gen = torch.Generator().manual_seed(1)
    rows, k, c_in, c_out = 23, 5, 4, 6
    x = (torch.randn(rows, k, c_in, generator=gen, dtype=torch.float64) + 3.0)
    weight = torch.randn(c_out, c_in, generator=gen, dtype=torch.float64) if with_weight else None
    norm = norm_with_both_signs(c_out if with_weight else c_in, momentum).train(train)
    norm_ref = copy.deepcopy(norm)
    grad = torch.randn(rows, c_out if with_weight else c_in, generator=gen, dtype=torch.float64)

    results = []
    for fn, bn in ((linear_bn_relu_max, norm), (plain, norm_ref)):
        xx = x.clone().requires_grad_()
        ww = None if weight is None else weight.clone().requires_grad_()
        for step in range(2):  # twice: the running statistics move twice
            out = fn(xx, ww, bn)
        out.backward(grad)
        results.append((out, xx.grad, None if ww is None else ww.grad, bn.weight.grad,
                        bn.bias.grad, dict(bn.named_buffers())))
    fused, reference = results
    assert (reference[0] > 0).any() and (reference[0] == 0).any()  # ReLU both ways
    for got, want in zip(fused[:5], reference[:5]):
        if want is None:
            assert got is None
        else:
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    for name, buffer in fused[5].items():
        torch.testing.assert_close(buffer, reference[5][name], rtol=1e-12, atol=1e-12, msg=name)


def test_float32_batch_statistics_with_a_large_offset(monkeypatch):
    monkeypatch.setattr(fused_max, "CHUNK_ELEMENTS", 64)
    x = torch.randn(200, 4, 8, generator=torch.Generator().manual_seed(0)) + 100.0
    norm = nn.BatchNorm1d(8)
    got = linear_bn_relu_max(x, None, copy.deepcopy(norm))
    want = plain(x, None, norm)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)

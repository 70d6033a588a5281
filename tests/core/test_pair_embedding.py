"""The chunked pair embedding + max against plain autograd on the whole pair tensor."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cp_plugin import pair_embedding
from cp_plugin.pair_embedding import embed_pairs_max


def plain(centre, neighbour, index, weights, norms):
    z = centre.unsqueeze(1) + neighbour[index]
    for weight, norm in zip(weights, norms):
        z = z if weight is None else F.linear(z, weight)
        z = F.relu(norm(z.reshape(-1, z.shape[-1])).view(z.shape))
    return z.amax(dim=1)


def make_layers(widths, momentum, gen):
    weights, norms = [None], []
    for c_in, c_out in zip(widths[:-1], widths[1:]):
        weights.append(torch.randn(c_out, c_in, generator=gen, dtype=torch.float64) / c_in ** 0.5)
    for width in widths:
        norm = nn.BatchNorm1d(width, momentum=momentum).double()
        with torch.no_grad():  # both signs of gamma: the max sits at the highest or lowest z
            norm.weight.copy_(torch.randn(width, generator=gen))
            norm.bias.copy_(torch.randn(width, generator=gen) * 0.3)
            norm.running_mean.copy_(torch.randn(width, generator=gen))
            norm.running_var.copy_(torch.rand(width, generator=gen) + 0.5)
        norms.append(norm)
    return weights, norms


@pytest.mark.parametrize("widths", [(5,), (5, 7), (4, 6, 3)], ids=str)
@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("recompute", [False, True, "export"])
def test_matches_autograd_across_many_chunks(monkeypatch, widths, train, momentum, recompute):
    monkeypatch.setattr(pair_embedding, "CHUNK_ELEMENTS", 50)  # uneven chunks of a few rows
    if recompute == "export":  # the plain ops torch.export traces, with either flag
        monkeypatch.setattr(torch.compiler, "is_exporting", lambda: True)
        recompute = bool(len(widths) % 2)
    gen = torch.Generator().manual_seed(len(widths))
    rows, k = 29, 4
    centre = torch.randn(rows, widths[0], generator=gen, dtype=torch.float64) + 2.0
    neighbour = torch.randn(rows, widths[0], generator=gen, dtype=torch.float64)
    index = torch.randint(0, rows, (rows, k), generator=gen)
    index[:3, 1] = index[:3, 0]  # repeated neighbours: exact ties in every channel's max
    weights, norms = make_layers(widths, momentum, gen)
    for norm in norms:
        norm.train(train)
    grad = torch.randn(rows, widths[-1], generator=gen, dtype=torch.float64)

    results = []
    def fused(*args):
        return embed_pairs_max(*args, recompute=recompute)

    for fn, bns in ((fused, norms), (plain, copy.deepcopy(norms))):
        inputs = [t.clone().requires_grad_() for t in (centre, neighbour)]
        ws = [None if w is None else w.clone().requires_grad_() for w in weights]
        for _ in range(2):  # twice: the running statistics move twice
            out = fn(*inputs, index, ws, bns)
        out.backward(grad)
        grads = [t.grad for t in inputs] + [w.grad for w in ws[1:]]
        grads += [p.grad for bn in bns for p in (bn.weight, bn.bias)]
        buffers = [b for bn in bns for b in bn.buffers()]
        results.append((out, grads, buffers))
    (out, grads, buffers), (out_ref, grads_ref, buffers_ref) = results
    assert (out_ref > 0).any() and (out_ref == 0).any()  # ReLU both ways
    torch.testing.assert_close(out, out_ref, rtol=1e-10, atol=1e-12)
    for i, (got, want) in enumerate(zip(grads, grads_ref)):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-11, msg=f"gradient {i}")
    for got, want in zip(buffers, buffers_ref):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("recompute", [False, True])
def test_float32_batch_statistics_with_a_large_offset(monkeypatch, recompute):
    monkeypatch.setattr(pair_embedding, "CHUNK_ELEMENTS", 64)
    gen = torch.Generator().manual_seed(0)
    centre = torch.randn(200, 8, generator=gen) + 100.0
    neighbour = torch.randn(200, 8, generator=gen)
    index = torch.randint(0, 200, (200, 4), generator=gen)
    norm = nn.BatchNorm1d(8)
    got = embed_pairs_max(centre, neighbour, index, [None], [copy.deepcopy(norm)],
                          recompute=recompute)
    torch.testing.assert_close(got, plain(centre, neighbour, index, [None], [norm]),
                               rtol=1e-4, atol=1e-4)

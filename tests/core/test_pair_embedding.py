"""The chunked pair embedding + max against plain autograd on the whole pair tensor."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cp_plugin import pair_embedding
from cp_plugin import CPModule
from cp_plugin.pair_embedding import embed_pairs_max
from cp_plugin.pair_mlp import PairMLP
from cp_plugin.testing import assert_close_to_rounding, rounding_bound


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
@pytest.mark.parametrize("recompute", [False, True, "export", "whole"])
def test_matches_autograd_across_many_chunks(monkeypatch, cpu_paths, widths, train, momentum,
                                             recompute):
    cpu_paths(pair_chunk_elements=50)  # uneven chunks of a few rows
    if recompute == "export":  # the plain ops torch.export traces, with either flag
        monkeypatch.setattr(torch.compiler, "is_exporting", lambda: True)
        recompute = bool(len(widths) % 2)
    elif recompute == "whole":  # plain ops where the pair tensors fit (a GPU's usual case)
        cpu_paths(pair_chunk_elements=50, plain_pair_elements=1 << 20)
        recompute = False
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
    # Each value sums over the layers' widths and, in training, each BN's rows * k pairs.
    length = rows * k * len(widths) + sum(widths)
    assert_close_to_rounding(out, out_ref, reduction_length=length)
    scale = max(float(g.abs().max()) for g in grads_ref)
    for i, (got, want) in enumerate(zip(grads, grads_ref)):
        assert_close_to_rounding(got, want, reduction_length=length, magnitude=scale,
                                 msg=f"gradient {i}")
    for got, want in zip(buffers, buffers_ref):
        if got.is_floating_point():
            assert_close_to_rounding(got, want, reduction_length=length)
        else:
            assert torch.equal(got, want)


@pytest.mark.parametrize("recompute", [False, True])
def test_float32_batch_statistics_with_a_large_offset(cpu_paths, recompute):
    """Moments accumulated chunk by chunk stay accurate when the mean dwarfs the spread.

    The rows sum ~1e7 squares that E[z^2] - E[z]^2 would need to cancel down to a variance of
    ~2 (float32 spacing near 1e7 is 1). Centred moments are off by no more than the rounding of
    sums of ``offset``-sized terms, divided by the spread the BN normalises with."""
    cpu_paths(pair_chunk_elements=64)
    gen = torch.Generator().manual_seed(0)
    rows, k, offset = 100, 2, 3000.0
    centre = torch.randn(rows, 8, generator=gen, dtype=torch.float64) + offset
    neighbour = torch.randn(rows, 8, generator=gen, dtype=torch.float64)
    index = torch.randint(0, rows, (rows, k), generator=gen)
    norm = nn.BatchNorm1d(8)
    got = embed_pairs_max(centre.float(), neighbour.float(), index, [None],
                          [copy.deepcopy(norm)], recompute=recompute)
    expected = plain(centre, neighbour, index, [None], [norm.double()])
    spread = (centre.unsqueeze(1) + neighbour[index]).flatten(0, 1).std(0).min()
    atol = rounding_bound(rows * k + 1, offset) / spread
    torch.testing.assert_close(got.double(), expected, rtol=0, atol=atol)


@pytest.mark.parametrize("recompute", [False, True])
def test_pair_mlp_pools_what_it_embeds_pair_by_pair(recompute):
    """PairMLP's split first layer and pooled paths against its own pair-by-pair embedding
    (the paper's [c_j - c_i, f_i, f_j] concatenated), in float64 with batch statistics."""
    torch.manual_seed(0)
    mlp = PairMLP(6, (5, 7), recompute=recompute).double().train()
    for _, norm, _ in mlp:
        nn.init.normal_(norm.weight)  # both signs: the max sits at the highest or lowest z
    grid = (3, 2, 4)
    points = torch.randn(2, 24, 6, dtype=torch.float64, requires_grad=True)
    neighbours = torch.randint(0, 24, (2, 24, 3))
    results = []
    for pool in (lambda: mlp(points, neighbours, grid),
                 lambda: mlp.embed_pairs(points, neighbours, grid).amax(2)):
        points.grad = None
        mlp.zero_grad()
        pooled = pool()
        (pooled * torch.linspace(-1, 1, pooled.numel()).view_as(pooled)).sum().backward()
        results.append([pooled, points.grad] + [p.grad for p in mlp.parameters()])
    # Fan-ins 15 and 5, and two BNs over the 144 pairs, forward and backward.
    for ours, paired in zip(*results):
        assert_close_to_rounding(ours, paired, reduction_length=2 * (15 + 5 + 2 * 144))


def test_pair_mlp_layers_keep_the_cp_modules_state_dict_keys():
    module = CPModule(8, k=2, mlp_channels=(4, 6))
    norm = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert [key for key in module.state_dict() if key.startswith("mlp.")] == [
        f"mlp.{layer}.{part}" for layer in (0, 1)
        for part in ["0.weight"] + [f"1.{name}" for name in norm]]
    assert module.mlp[0][0].weight.shape == (4, 3 + 2 * 8)

"""Properties of the search and the module on random shapes and values (hypothesis).

``derandomize`` makes every run try the same examples, so CI cannot pass by luck one day and
fail the next; the counts below are what docs/reliability.md quotes.
"""
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cp_plugin import CPModule, other_frame_knn
from cp_plugin.testing import (assert_close_to_rounding, cp_reduction_length,
                               search_rounding_bound)
from cp_plugin.testing import randomise_norms

EXAMPLES = 100
PROPERTY = settings(max_examples=EXAMPLES, deadline=None, derandomize=True)


@st.composite
def clips(draw, kinds=("normal", "integers", "scaled")):
    """(N, C, T, H, W) features, from a drawn seed: continuous, heavily tied, or far from unit scale."""
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 12))
    t, h, w = draw(st.integers(2, 5)), draw(st.integers(1, 5)), draw(st.integers(1, 5))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    x = torch.randn(n, c, t, h, w, generator=gen)
    kind = draw(st.sampled_from(kinds))
    if kind == "integers":  # few distinct values: many equal distances
        x = x.round()
    elif kind == "scaled":
        x = x * draw(st.sampled_from([1e-3, 1e3])) + draw(st.sampled_from([0.0, 50.0]))
    k = draw(st.integers(1, (t - 1) * h * w))
    return x, k


def points_of(x):
    return x.flatten(2).transpose(1, 2)


@PROPERTY
@given(clips())
def test_no_neighbour_in_the_querys_own_frame(clip):
    x, k = clip
    t, hw = x.shape[2], x.shape[3] * x.shape[4]
    indices = other_frame_knn(points_of(x), t, k)
    frame = torch.arange(t * hw) // hw
    assert not (frame[indices] == frame[None, :, None]).any()
    assert (indices.sort(-1).values.diff(dim=-1) != 0).all()  # no point twice


@PROPERTY
@given(clips(kinds=("normal", "scaled")), st.data())
def test_a_copied_frame_holds_every_points_nearest_neighbour(clip, data):
    x, k = clip
    t, hw = x.shape[2], x.shape[3] * x.shape[4]
    source = data.draw(st.integers(0, t - 1))
    copy = data.draw(st.integers(0, t - 1).filter(lambda f: f != source))
    x[:, :, copy] = x[:, :, source]
    nearest = other_frame_knn(points_of(x), t, 1)[..., 0]
    query = torch.arange(hw) + source * hw
    assert torch.equal(nearest[:, query], (torch.arange(hw) + copy * hw).expand(x.shape[0], -1))


@PROPERTY
@given(clips(), st.permutations(range(5)))
def test_storing_the_frames_in_another_order_permutes_the_neighbours(clip, order):
    x, k = clip
    t, hw = x.shape[2], x.shape[3] * x.shape[4]
    order = torch.tensor([f for f in order if f < t])
    points = points_of(x).double()
    shuffled = points_of(x[:, :, order]).double()
    distances = lambda p, idx: (p.unsqueeze(2) - p[torch.arange(p.shape[0])[:, None, None], idx]
                                ).pow(2).sum(-1)
    # Point q of the shuffled clip is point old[q] of the original one.
    old = (order[:, None] * hw + torch.arange(hw)).flatten()
    got = distances(shuffled, other_frame_knn(shuffled, t, k))
    expected = distances(points, other_frame_knn(points, t, k))[:, old]
    # Equal distances, not indices: ties may be broken differently.
    torch.testing.assert_close(got.sort(-1).values, expected.sort(-1).values,
                               rtol=0, atol=search_rounding_bound(points, points.dtype))


@PROPERTY
@given(clips(kinds=("normal",)), st.permutations(range(5)))
def test_module_output_follows_a_frame_reordering(clip, order):
    """With the time-displacement weights at zero, nothing but storage order changes."""
    x, k = clip
    t = x.shape[2]
    order = torch.tensor([f for f in order if f < t])
    torch.manual_seed(0)
    module = randomise_norms(CPModule(x.shape[1], k=min(k, 4))).double().eval()
    with torch.no_grad():
        module.mlp[0][0].weight[:, 0] = 0  # the t/T coordinate's column
        out = module(x.double())
        out_shuffled = module(x.double()[:, :, order])
    assert_close_to_rounding(out_shuffled, out[:, :, order],
                             reduction_length=cp_reduction_length(module, x))


@settings(max_examples=EXAMPLES // 3, deadline=None, derandomize=True)
@given(clips(kinds=("normal", "integers")), st.booleans())
def test_same_seed_gives_bitwise_equal_results(clip, checkpoint_pairs):
    x, k = clip

    def run():
        torch.manual_seed(1)
        module = randomise_norms(CPModule(x.shape[1], k=k, checkpoint_pairs=checkpoint_pairs))
        inputs = x.clone().requires_grad_(True)
        out = module(inputs)
        out.square().sum().backward()
        return [out, inputs.grad] + [p.grad for p in module.parameters()]

    first, second = run(), run()
    assert all(torch.equal(a, b) for a, b in zip(first, second))


def test_docs_quote_these_counts():
    import os

    page = open(os.path.join(os.path.dirname(__file__), "..", "..", "docs", "reliability.md")).read()
    assert f"{EXAMPLES} random examples per property" in page
    assert f"{EXAMPLES // 3} examples check that two runs with the same seed" in page

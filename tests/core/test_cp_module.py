import copy

import pytest
import torch
from torch import nn

from cp_plugin import CPModule, frames_to_video, video_to_frames
from cp_plugin.device_paths import ACCELERATOR_PATHS, CPU_PATHS, use_device_paths
from cp_plugin.reference import ReferenceCPModule
from cp_plugin.testing import (assert_close_to_rounding, assert_same_in_float64,
                               cp_reduction_length, randomise_norms)

CONFIGS = [
    dict(in_channels=8, k=3),
    dict(in_channels=12, k=4, mlp_channels=(16, 8, 10)),
    dict(in_channels=12, k=4, mlp_channels=(16, 8, 10), checkpoint_pairs=True),
    dict(in_channels=16, k=2, bottleneck_channels=6, mlp_channels=(6,)),
    dict(in_channels=8, k=5, shrink=2),
]


def twin(cfg, seed=0):
    torch.manual_seed(seed)
    fast = randomise_norms(CPModule(**cfg), seed)
    ref = ReferenceCPModule(**cfg)
    ref.load_state_dict(fast.state_dict())
    return fast, ref


@pytest.mark.parametrize("paths", ["cpu", "gpu"])
@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_matches_reference_forward_and_gradients(cfg, train, dtype, paths):
    """Each device's paths (the GPU's: whole-clip search, plain pair tensors), on the CPU."""
    with use_device_paths("cpu", ACCELERATOR_PATHS if paths == "gpu" else CPU_PATHS):
        check_against_reference(cfg, train, dtype)


def check_against_reference(cfg, train, dtype):
    fast, ref = twin(cfg)
    fast.to(dtype)
    ref.to(dtype)
    fast.train(train)
    ref.train(train)
    if not train:  # Use non-trivial running statistics in eval mode.
        for model in (fast, ref):
            for m in model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.running_mean.fill_(0.1)
                    m.running_var.fill_(2.0)
    x = torch.randn(2, cfg["in_channels"], 3, 6, 5, generator=torch.Generator().manual_seed(1))
    x = x.to(dtype)
    x_fast = x.clone().requires_grad_()
    x_ref = x.clone().requires_grad_()
    out_fast, out_ref = fast(x_fast), ref(x_ref)
    length = cp_reduction_length(fast, x)

    def same(got, want, magnitude, name):
        # float64: the two paths agree to 1e-9; float32: to the rounding bound.
        if dtype == torch.float64:
            assert_same_in_float64(got, want, scale=float(magnitude), msg=name)
        else:
            assert_close_to_rounding(got, want, reduction_length=length, magnitude=magnitude,
                                     msg=name)

    # The output is x + delta: its terms are as large as the larger of the two.
    same(out_fast, out_ref, max(x.abs().max(), (out_ref - x).abs().max()), "output")
    weight = torch.randn(out_fast.shape, generator=torch.Generator().manual_seed(2)).to(dtype)
    (out_fast * weight).sum().backward()
    (out_ref * weight).sum().backward()
    grads_fast = {"x": x_fast.grad, **{n: p.grad for n, p in fast.named_parameters()}}
    grads_ref = {"x": x_ref.grad, **{n: p.grad for n, p in ref.named_parameters()}}
    # Gradients are sums over many pairs, and some are zero up to rounding (a BN's bias before
    # another BN): rounding scales with the largest of them.
    scale = max(float(g.abs().max()) for g in grads_ref.values())
    for name, grad in grads_fast.items():
        assert grad is not None, name
        same(grad, grads_ref[name], scale, name)
    if train:  # The running statistics were updated identically too.
        ref_buffers = dict(ref.named_buffers())
        for name, buf in fast.named_buffers():
            if buf.is_floating_point():
                same(buf, ref_buffers[name], ref_buffers[name].abs().max(), name)
            else:
                assert torch.equal(buf, ref_buffers[name]), name


@pytest.mark.parametrize("cfg", [CONFIGS[0], CONFIGS[2], CONFIGS[3], CONFIGS[4]])
def test_gradcheck_float64(cfg):
    torch.manual_seed(0)
    module = randomise_norms(CPModule(**cfg)).double()
    x = torch.randn(1, cfg["in_channels"], 3, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(module, (x,), eps=1e-6, atol=1e-5)


def test_identity_at_init_then_learns():
    torch.manual_seed(0)
    module = CPModule(16, k=4)
    x = torch.randn(2, 16, 4, 7, 7)
    assert torch.equal(module(x), x)
    target = torch.randn_like(x)
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    loss = (module(x) - target).pow(2).mean()
    loss.backward()
    optimizer.step()
    assert not torch.equal(module(x), x)


def test_frame_batches_match_video_layout():
    torch.manual_seed(0)
    module = randomise_norms(CPModule(8, k=3)).eval().double()
    video = torch.randn(3, 8, 4, 5, 5, dtype=torch.float64)
    expected = video_to_frames(module(video))
    frames = video_to_frames(video)
    # Other memory layouts, other kernels: equal to float64 rounding.
    assert_same_in_float64(module(frames, num_clips=3), expected)
    assert_same_in_float64(module(frames, num_frames=4), expected)
    assert torch.equal(frames_to_video(frames, 4), video)  # a pure re-layout
    static = copy.deepcopy(module)
    static.num_frames = 4  # as built for a TSN-style backbone
    assert_same_in_float64(static(frames), expected)


def test_any_size_at_run_time_and_memory_layouts():
    torch.manual_seed(0)
    module = randomise_norms(CPModule(8, k=1)).eval().double()
    for shape in [(1, 8, 2, 1, 1), (2, 8, 5, 3, 7), (1, 8, 16, 4, 4)]:
        x = torch.randn(shape, dtype=torch.float64)
        assert module(x).shape == x.shape
    x = torch.randn(2, 8, 3, 6, 6, dtype=torch.float64)
    strided = torch.randn(2, 3, 6, 6, 8, dtype=torch.float64).permute(0, 4, 1, 2, 3)
    strided.data.copy_(x)  # a channels-last video
    assert_same_in_float64(module(strided), module(x))


def test_extra_repr():
    text = repr(CPModule(64, k=4, bottleneck_channels=8, mlp_channels=(8,), shrink=2))
    assert "in_channels=64, k=4, mlp_channels=(8,), bottleneck_channels=8, shrink=2" in text
    assert "mlp_channels=(4, 8)" in repr(CPModule(16))


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(in_channels=0), ValueError, "in_channels must be >= 1"),
    (dict(in_channels=8, k=0), ValueError, "k must be >= 1"),
    (dict(in_channels=8, mlp_channels=()), ValueError, "mlp_channels must name at least one"),
    (dict(in_channels=8, mlp_channels=(4, 0)), ValueError, r"mlp_channels\[1\] must be >= 1"),
    (dict(in_channels=8, shrink=1.5), TypeError, "shrink must be an int"),
    (dict(in_channels=8, num_frames=1), ValueError, "num_frames .* must be >= 2"),
])
def test_bad_construction(kwargs, error, match):
    with pytest.raises(error, match=match):
        CPModule(**kwargs)


@pytest.mark.parametrize("x,kwargs,error,match", [
    (torch.randn(8, 3, 3), {}, ValueError, "got 3 dims"),
    (torch.randn(1, 8, 1, 4, 4), {}, ValueError, r"must be >= 2.*got T=1"),
    (torch.randn(1, 8, 2, 2, 2), {}, ValueError, "use k <= 4"),
    (torch.randn(1, 6, 3, 4, 4), {}, ValueError,
     r"has 6 channels \(dim 1\), CPModule takes 8; build it with in_channels=6"),
    (torch.full((1, 8, 3, 4, 4), float("inf")), {}, ValueError, "x contains 384 non-finite"),
    (torch.randn(6, 8, 4, 4), {}, ValueError, "needs num_clips or num_frames"),
    (torch.randn(6, 8, 4, 4), dict(num_clips=4), ValueError, "does not divide into num_clips=4"),
    (torch.randn(6, 8, 4, 4), dict(num_frames=4), ValueError, "does not divide into clips of num_frames=4"),
    (torch.randn(6, 8, 4, 4), dict(num_clips=2, num_frames=2), ValueError, "!= batch size 6"),
    (torch.randn(6, 8, 4, 4), dict(num_clips=6), ValueError, "got T=1"),
])
def test_bad_input(x, kwargs, error, match):
    with pytest.raises(error, match=match):
        CPModule(8, k=5)(x, **kwargs)


def test_shrink_needs_a_large_enough_map():
    with pytest.raises(ValueError, match="shrink=2 needs feature maps of at least 2x2"):
        CPModule(8, k=1, shrink=2)(torch.randn(1, 8, 3, 1, 4))


def test_coordinates_are_the_papers_locations():
    """Point (t, h, w) of a T=2, H=2, W=3 grid sits at (t/T, h/H, w/W), frame-major; the fast
    path's coordinates equal the reference's."""
    from cp_plugin.layout import frame_coordinates
    from cp_plugin.reference import nearest_rows, point_coordinates

    pinned = torch.tensor([
        [0, 0, 0], [0, 0, 1 / 3], [0, 0, 2 / 3], [0, 0.5, 0], [0, 0.5, 1 / 3], [0, 0.5, 2 / 3],
        [0.5, 0, 0], [0.5, 0, 1 / 3], [0.5, 0, 2 / 3], [0.5, 0.5, 0], [0.5, 0.5, 1 / 3],
        [0.5, 0.5, 2 / 3]])
    assert_close_to_rounding(point_coordinates(2, 2, 3), pinned, reduction_length=1)
    assert_close_to_rounding(frame_coordinates(2, 2, 3), pinned, reduction_length=1)
    assert nearest_rows(6, 3) == [0, 2, 4] and nearest_rows(7, 3) == [0, 2, 4]

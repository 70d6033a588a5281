"""Degenerate and hostile input: ties everywhere, the smallest shapes, huge values, NaN, bad files."""
import os

import pytest
import torch

import cp_plugin  # noqa: F401
from cp_plugin import CPModule, other_frame_knn
from cp_plugin.device_paths import ACCELERATOR_PATHS
from cp_plugin.validation import check_finite
from cp_plugin.testing import assert_close_to_rounding, assert_same_in_float64, cp_reduction_length
from cp_plugin.testing import randomise_norms
from test_cp_module import twin
from test_knn import assert_exact_knn


def run_forward_backward(module, x):
    x = x.detach().clone().requires_grad_(True)
    out = module(x)
    out.square().sum().backward()
    return out, x.grad


def assert_same_to_rounding(module, x, results, expected):
    """Two (output, input gradient) results of ``module`` on ``x``, each to its own scale: to
    float64 rounding for float64 runs, else to the float32 bound."""
    for got, want in zip(results, expected):
        if got.dtype == torch.float64:
            assert_same_in_float64(got, want)
        else:
            assert_close_to_rounding(got, want, reduction_length=cp_reduction_length(module, x))


def randomised_module(channels=8, k=3, seed=0):
    torch.manual_seed(seed)
    return randomise_norms(CPModule(channels, k=k), seed).train()


@pytest.mark.parametrize("value", [0.0, 7.5], ids=["zeros", "constant"])
def test_every_distance_ties(value):
    """All points equal: any k other-frame points are nearest; the output is finite."""
    x = torch.full((2, 8, 3, 4, 4), value)
    indices = other_frame_knn(x.flatten(2).transpose(1, 2), 3, 5)
    assert_exact_knn(x.flatten(2).transpose(1, 2), 3, 5, indices)
    out, grad = run_forward_backward(randomised_module(), x)
    assert torch.isfinite(out).all() and torch.isfinite(grad).all()


@pytest.mark.parametrize("shape,k", [((2, 8, 5, 1, 1), 4), ((2, 8, 2, 3, 3), 9), ((1, 8, 2, 1, 1), 1)],
                         ids=["single-pixel", "T=2", "single-pixel,T=2"])
def test_smallest_shapes_with_the_largest_k(shape, k):
    """k = (T-1)HW: every point takes all the other frames' points."""
    x = torch.randn(shape, dtype=torch.float64)
    t, hw = shape[2], shape[3] * shape[4]
    assert k == (t - 1) * hw
    points = x.flatten(2).transpose(1, 2)
    indices = other_frame_knn(points, t, k)
    own_frame = torch.arange(t * hw) // hw
    for query in range(t * hw):
        expected = (own_frame != own_frame[query]).nonzero().flatten()
        assert torch.equal(indices[:, query].sort(-1).values, expected.expand(shape[0], -1))
    fast, ref = twin(dict(in_channels=8, k=k))
    out, grad = run_forward_backward(fast.train().double(), x)
    ref_out, ref_grad = run_forward_backward(ref.train().double(), x)
    assert_same_to_rounding(fast, x, (out, grad), (ref_out, ref_grad))
    with pytest.raises(ValueError, match=f"use k <= {k}"):
        CPModule(8, k=k + 1)(x)


def test_huge_magnitudes_neither_overflow_nor_misrank():
    """Features of size 1e4 (squared norms ~1e9 in float32): the search stays exact."""
    torch.manual_seed(0)
    x = torch.randn(2, 16, 3, 5, 5) * 1e4
    points = x.flatten(2).transpose(1, 2)
    assert_exact_knn(points, 3, 6, other_frame_knn(points, 3, 6))
    out, grad = run_forward_backward(randomised_module(16, 6), x)
    assert torch.isfinite(out).all() and torch.isfinite(grad).all()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_input_is_refused(bad):
    x = torch.randn(1, 8, 3, 4, 4)
    x[0, 2, 1, 3, 0] = bad
    with pytest.raises(ValueError, match="x contains 1 non-finite value"):
        CPModule(8, k=3)(x)
    with pytest.raises(ValueError, match="points contains 1 non-finite value"):
        other_frame_knn(x.flatten(2).transpose(1, 2), 3, 3)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_finite_values_whose_sum_overflows_are_accepted(bad):
    """The check reduces first (a sum): huge finite values are no NaN, one bad value is."""
    points = torch.full((1, 8, 4), 3e38)  # finite in float32, their sum is not
    assert not torch.isfinite(points.sum())
    check_finite("points", points)
    check_finite("points", torch.full((4, 4), 6e4, dtype=torch.float16))
    points[0, 5, 1] = bad
    with pytest.raises(ValueError, match="points contains 1 non-finite value"):
        check_finite("points", points)


def test_on_an_accelerators_paths_non_finite_input_propagates(cpu_paths):
    """As through any other layer (no host sync, no device-side assert): the NaN reaches the
    loss and GradScaler skips the step. finite_check=True is the debugging switch."""
    x = torch.randn(1, 8, 3, 4, 4)
    x[0, 2, 1, 3, 0] = float("inf")
    module = randomise_norms(CPModule(8, k=3))
    cpu_paths(ACCELERATOR_PATHS)
    assert not torch.isfinite(module(x)).all()
    cpu_paths(ACCELERATOR_PATHS, finite_check=True)
    with pytest.raises(ValueError, match="x contains 1 non-finite value"):
        module(x)


@pytest.mark.parametrize("layout", ["channels_last_3d", "strided", "transposed"])
def test_memory_layouts_give_the_same_result(layout):
    torch.manual_seed(0)
    base = torch.randn(2, 8, 3, 6, 5, dtype=torch.float64)
    if layout == "channels_last_3d":
        x = base.to(memory_format=torch.channels_last_3d)
    elif layout == "strided":
        x = torch.randn(2, 8, 3, 12, 5, dtype=torch.float64)[:, :, :, ::2]
        base = x.contiguous()
    else:  # (N, C, T, W, H) storage seen as (N, C, T, H, W)
        x = base.transpose(3, 4).contiguous().transpose(3, 4)
    assert not x.is_contiguous()
    module = randomised_module().double()
    expected, expected_grad = run_forward_backward(module, base)
    out, grad = run_forward_backward(module, x)
    assert_same_to_rounding(module, x, (out, grad), (expected, expected_grad))


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_damaged_video_error_names_the_file(damage, tmp_path, video_data):
    """A shipped config's own pipeline (decord) on a damaged file: the error says which file."""
    from mmaction.registry import DATASETS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from cp_plugin.mmaction import SampleLoadError

    good = (video_data / "clip_0.mp4").read_bytes()
    damaged = {"truncated": good[:len(good) // 2], "garbage": os.urandom(4096), "empty": b""}
    (tmp_path / "bad.mp4").write_bytes(damaged[damage])
    (tmp_path / "train.txt").write_text("clip_0.mp4 0\nbad.mp4 1\n")
    (tmp_path / "clip_0.mp4").write_bytes(good)

    init_default_scope("mmaction")
    config = os.path.join(os.path.dirname(__file__), "..", "..", "mmaction_configs", "sthv2",
                          "cpnet_r18_12x2_sthv2_phase1.py")
    dataset_cfg = Config.fromfile(config).train_dataloader.dataset
    dataset_cfg.update(ann_file=str(tmp_path / "train.txt"), data_prefix=dict(video=str(tmp_path)))
    dataset = DATASETS.build(dataset_cfg)
    assert dataset[0]["inputs"].shape[0] == 1  # the intact clip loads
    with pytest.raises(SampleLoadError, match=rf"sample 1 \({tmp_path}/bad.mp4\)") as caught:
        dataset[1]
    assert caught.value.__cause__ is not None  # the decoder's own error, chained


def test_only_read_errors_are_renamed(tmp_path, video_data):
    """A bug that is not about the file (here a missing key) passes through unchanged."""
    from mmaction.registry import TRANSFORMS
    from mmengine.registry import init_default_scope

    from cp_plugin.mmaction import SampleLoadError

    init_default_scope("mmaction")
    step = TRANSFORMS.build(dict(type="NameReadFailures", transform=dict(type="DecordInit")))
    with pytest.raises(KeyError, match="filename"):
        step(dict(sample_idx=0))
    with pytest.raises(SampleLoadError, match=r"sample 4 \(.*missing.mp4\)"):
        step(dict(filename=str(tmp_path / "missing.mp4"), sample_idx=4))
    assert step(dict(filename=str(video_data / "clip_0.mp4"), sample_idx=0))["total_frames"] > 0


def test_config_with_unknown_cp_block_name(tmp_path):
    """A typo in a shipped config's block list fails at build time and lists the valid names."""
    from mmaction.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    init_default_scope("mmaction")
    config = os.path.join(os.path.dirname(__file__), "..", "..", "mmaction_configs", "kinetics400",
                          "cpnet_r18_8x4_kinetics400.py")
    cfg = Config.fromfile(config)
    cfg.model.backbone.backbone.pretrained = None
    cfg.model.backbone.cp_blocks = ["layer2.0", "layer3.7"]
    with pytest.raises(ValueError, match=r"no block named 'layer3.7'; valid block names: layer1.0"):
        MODELS.build(cfg.model)


def test_read_errors_name_the_file_and_other_errors_pass():
    from cp_plugin.read_errors import FileReadError, naming_the_file

    with pytest.raises(FileReadError, match=r"could not read video 'a\.mp4': OSError: gone") as caught:
        with naming_the_file("a.mp4", "video"):
            raise OSError("gone")
    assert isinstance(caught.value.__cause__, OSError)
    with pytest.raises(KeyError):
        with naming_the_file("a.mp4", "video"):
            raise KeyError("not a read error")

"""FusedNonLocal3d against mmcv's NonLocal3d, which it must reproduce exactly."""
import pytest
import torch
from mmcv.cnn import NonLocal3d

import cp_plugin.mmaction  # noqa: F401  (registers the modules)
from cp_plugin.mmaction import FusedNonLocal3d
from cp_plugin.testing import assert_close_to_rounding, summed_fan_in
from mmaction.registry import MODELS


def pair(**kwargs):
    kwargs = dict(dict(norm_cfg=dict(type="BN3d"), zeros_init=False), **kwargs)
    torch.manual_seed(0)
    reference = NonLocal3d(6, **kwargs)
    fused = FusedNonLocal3d(6, **kwargs)
    fused.load_state_dict(reference.state_dict())
    return reference, fused


@pytest.mark.parametrize("sub_sample", [False, True])
@pytest.mark.parametrize("use_scale", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_mmcv_forward_and_gradients(sub_sample, use_scale, dtype):
    reference, fused = pair(sub_sample=sub_sample, use_scale=use_scale, reduction=2)
    reference.to(dtype), fused.to(dtype)
    x = torch.randn(3, 6, 3, 6, 8, dtype=dtype) * 2
    outputs = []
    for module in (reference, fused):
        xx = x.clone().requires_grad_()
        out = module(xx)
        grad = torch.randn_like(out, generator=torch.Generator().manual_seed(1))
        out.backward(grad)
        params = [p.grad.clone() for p in module.parameters()]
        outputs.append((out.detach(), xx.grad, params, module.conv_out.norm.running_mean.clone()))
    (out_r, gx_r, gp_r, rm_r), (out_f, gx_f, gp_f, rm_f) = outputs
    assert not torch.equal(out_r, x)  # non-zero output norm: the attention path is exercised
    # Each value sums over the layers' fan-in, the attention's two passes over the T*H*W
    # positions and the output BN's N*T*H*W.
    positions = x[0, 0].numel()
    length = summed_fan_in(reference) + 2 * positions + x.shape[0] * positions
    assert_close_to_rounding(out_f, out_r, reduction_length=length)
    assert_close_to_rounding(gx_f, gx_r, reduction_length=length)
    # phi's bias adds a constant to each softmax row, so its true gradient is zero and only
    # rounding noise is left: compare parameter gradients on the scale of the largest one.
    scale = max(g.abs().max().item() for g in gp_r)
    for a, b in zip(gp_f, gp_r):
        assert_close_to_rounding(a, b, reduction_length=length, magnitude=scale)
    assert_close_to_rounding(rm_f, rm_r, reduction_length=length)


def test_same_parameters_and_initialisation_as_mmcv():
    torch.manual_seed(3)
    reference = NonLocal3d(8, norm_cfg=dict(type="BN3d"))
    torch.manual_seed(3)
    fused = FusedNonLocal3d(8, norm_cfg=dict(type="BN3d"))
    ref_state, fused_state = reference.state_dict(), fused.state_dict()
    assert list(ref_state) == list(fused_state)
    for key in ref_state:
        assert torch.equal(ref_state[key], fused_state[key]), key
    x = torch.randn(1, 8, 2, 4, 4)
    assert torch.equal(fused(x), x)  # zero-initialised output norm: identity at start


def test_registered_and_validated():
    assert MODELS.get("FusedNonLocal3d") is FusedNonLocal3d
    with pytest.raises(ValueError, match="embedded_gaussian.*use mmcv's NonLocal3d"):
        FusedNonLocal3d(8, mode="dot_product")
    with pytest.raises(ValueError, match=r"\(N, C, T, H, W\), got \(1, 8, 4, 4\)"):
        FusedNonLocal3d(8)(torch.randn(1, 8, 4, 4))

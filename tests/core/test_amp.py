"""Mixed precision: CP under torch.autocast, and a search that keeps float32 precision there."""
import pytest
import torch

from cp_plugin import CPModule, other_frame_knn
from test_cp_module import CONFIGS, randomise_norms
from test_knn import assert_exact_knn

AUTOCAST_DTYPES = [torch.bfloat16, torch.float16]


@pytest.mark.parametrize("dtype", AUTOCAST_DTYPES, ids=str)
@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_finite_outputs_and_gradients_under_autocast(cfg, dtype):
    torch.manual_seed(0)
    module = randomise_norms(CPModule(**cfg)).train()
    x = torch.randn(2, cfg["in_channels"], 3, 6, 6, requires_grad=True)
    with torch.autocast("cpu", dtype=dtype):
        out = module(x)
        loss = out.float().square().mean()
    loss.backward()
    assert torch.isfinite(out).all() and torch.isfinite(x.grad).all()
    assert x.grad.abs().sum() > 0
    for name, param in module.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name


@pytest.mark.parametrize("dtype", AUTOCAST_DTYPES, ids=str)
def test_search_under_autocast_keeps_float32_precision(dtype):
    """The chosen neighbours' true distances equal the true k nearest ones to float32 rounding."""
    torch.manual_seed(0)
    points = torch.randn(2, 4 * 49, 64)
    with torch.autocast("cpu", dtype=dtype):
        indices = other_frame_knn(points, 4, 8)
    assert_exact_knn(points, 4, 8, indices)


@pytest.mark.parametrize("dtype", AUTOCAST_DTYPES, ids=str)
def test_low_precision_points_are_searched_in_float32(dtype):
    """Points already in half precision (an autocast layer's output) are ranked exactly."""
    torch.manual_seed(0)
    points = torch.randn(2, 3 * 36, 32).to(dtype)
    indices = other_frame_knn(points, 3, 5)
    assert_exact_knn(points.float(), 3, 5, indices)

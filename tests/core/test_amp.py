"""Mixed precision: CP under torch.autocast, and a search that keeps float32 precision there."""

import math

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from cp_plugin import CPModule, other_frame_knn
from cp_plugin.device_paths import ACCELERATOR_PATHS, CPU_PATHS, use_device_paths
from cp_plugin.testing import randomise_norms
from test_cp_module import CONFIGS
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


class MatmulDtypes(TorchDispatchMode):
    """Records the operand dtypes and the first operand's shape of every matrix product."""

    PRODUCTS = {"mm", "bmm", "addmm", "baddbmm"}

    def __init__(self):
        super().__init__()
        self.seen = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.__name__.split(".")[0] in self.PRODUCTS:
            operands = [a for a in args if isinstance(a, torch.Tensor)]
            self.seen.append(({t.dtype for t in operands}, operands[-2].shape))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("paths", ["cpu", "gpu"])
@pytest.mark.parametrize("dtype", AUTOCAST_DTYPES, ids=str)
def test_every_matmul_but_the_searchs_runs_in_the_autocast_dtype(dtype, paths):
    """Projections and pair MLP (fused, chunked or whole tensors), forward and backward; the
    search's products alone stay float32, recognisable by their C' + 1 expanded channels."""
    for cfg in CONFIGS:
        torch.manual_seed(0)
        module = CPModule(**cfg).train()
        x = torch.randn(2, cfg["in_channels"], 3, 6, 6, requires_grad=True)
        with use_device_paths("cpu", ACCELERATOR_PATHS if paths == "gpu" else CPU_PATHS), \
                MatmulDtypes() as seen:
            with torch.autocast("cpu", dtype=dtype):
                out = module(x)
            out.float().sum().backward()
        lowered = [shape for dtypes, shape in seen.seen if dtypes == {dtype}]
        kept = [shape for dtypes, shape in seen.seen if dtypes != {dtype}]
        assert len(lowered) >= 8, cfg  # forward and backward of every layer
        assert all(shape[-1] == module.search_channels + 1 for shape in kept), (cfg, kept)


def test_a_float16_overflow_on_an_accelerator_skips_the_step_and_training_goes_on(cpu_paths):
    """float16 AMP's loop as on a GPU, emulated on the CPU with an accelerator's paths: one
    step's input overflows float16, so CP's input holds Inf. CP lets it through as every other
    layer does; GradScaler finds non-finite gradients, skips that step (weights unchanged, scale
    halved), and the next steps train. Behind CPU_PATHS the same step raises instead."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv3d(3, 8, 1), randomise_norms(CPModule(8, k=3)),
                                torch.nn.AdaptiveAvgPool3d(1), torch.nn.Flatten(),
                                torch.nn.Linear(8, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10)
    x, labels = torch.randn(4, 3, 3, 4, 4), torch.tensor([0, 1, 0, 1])
    overflowing = x.clone()
    overflowing[0, 0, 0, 0, 0] = 1e5  # beyond float16's 65504

    def step(inputs):
        optimizer.zero_grad()
        with torch.autocast("cpu", dtype=torch.float16):
            loss = torch.nn.functional.cross_entropy(model(inputs).float(), labels)
        scaler.scale(loss).backward()
        before = [p.detach().clone() for p in model.parameters()]
        scaler.step(optimizer)
        scaler.update()
        moved = any(not torch.equal(a, p) for a, p in zip(before, model.parameters()))
        return float(loss.detach()), moved

    cpu_paths(ACCELERATOR_PATHS)
    assert step(x)[1]
    scale = scaler.get_scale()
    loss, moved = step(overflowing)
    assert not math.isfinite(loss) and not moved and scaler.get_scale() == scale / 2
    for _ in range(3):
        loss, moved = step(x)
        assert math.isfinite(loss) and moved
    assert all(torch.isfinite(p).all() for p in model.parameters())

    cpu_paths()  # the CPU's own paths: a clear error where the check costs nothing
    with pytest.raises(ValueError, match="x contains 8 non-finite value"):  # 1 input, 8 channels
        step(overflowing)

"""CUDA check: CPModule (every path) against the reference, and the search against brute force.

Run on a GPU machine (``python -m benchmarks.cuda_check``) before ``python -m benchmarks
--device cuda``; exits non-zero on a mismatch. The CPU tests cover the same ground on the CPU.
"""
import sys

import torch
from torch import nn

from cp_plugin import CPModule, other_frame_knn
from cp_plugin.reference import ReferenceCPModule

CONFIGS = (dict(in_channels=12, k=4, mlp_channels=(16, 8, 10)),
           dict(in_channels=12, k=4, mlp_channels=(16, 8, 10), checkpoint_pairs=True),
           dict(in_channels=16, k=2, bottleneck_channels=6, mlp_channels=(6,)),
           dict(in_channels=8, k=5, shrink=2))
TOLERANCE = {torch.float64: 1e-9, torch.float32: 2e-4}


def worst_difference(cfg: dict, dtype: torch.dtype, device: torch.device) -> float:
    """Largest fast-vs-reference difference in output and gradients, relative to their scale."""
    torch.manual_seed(0)
    fast = CPModule(**cfg)
    gen = torch.Generator().manual_seed(0)
    for m in fast.modules():  # BN parameters of both signs (the output BN starts at zero)
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            sign = torch.randint(0, 2, m.weight.shape, generator=gen) * 2 - 1
            m.weight.data = (torch.rand(m.weight.shape, generator=gen) + 0.5) * sign
            m.bias.data = torch.randn(m.bias.shape, generator=gen) * 0.1
    ref = ReferenceCPModule(**cfg)
    ref.load_state_dict(fast.state_dict())
    x = torch.randn(2, cfg["in_channels"], 3, 6, 5, device=device, dtype=dtype)
    results = []
    for module in (fast.to(device, dtype), ref.to(device, dtype)):
        x_grad = x.clone().requires_grad_()
        out = module(x_grad)
        weight = torch.linspace(-1, 1, out.numel(), device=device, dtype=dtype).view_as(out)
        (out * weight).sum().backward()
        results.append([out.detach(), x_grad.grad] + [p.grad for p in module.parameters()])
    (out, *grads), (out_ref, *grads_ref) = results
    # Gradients relative to the largest of them, as the CPU tests do (some are ~0).
    scale = max(float(g.abs().max()) for g in grads_ref)
    return max([float((out - out_ref).abs().max() / out_ref.abs().max())]
               + [float((g - r).abs().max()) / scale for g, r in zip(grads, grads_ref)])


def search_is_exact(device: torch.device) -> bool:
    points = torch.randn(2, 8 * 784, 64, device=device)
    indices = other_frame_knn(points, 8, 8)
    distances = torch.cdist(points.double(), points.double()).pow(2)
    frame = torch.arange(points.shape[1], device=device) // 784
    distances = distances.masked_fill(frame[:, None] == frame[None], float("inf"))
    return torch.allclose(distances.gather(2, indices).sort(-1).values,
                          distances.topk(8, largest=False).values, rtol=1e-5)


def main() -> int:
    device = torch.device("cuda")
    print(torch.__version__, torch.cuda.get_device_name(device), flush=True)
    failures = 0
    for dtype, tolerance in TOLERANCE.items():
        for cfg in CONFIGS:
            worst = worst_difference(cfg, dtype, device)
            failures += worst >= tolerance
            print(f"{dtype} {cfg}: worst relative difference {worst:.2e} "
                  f"{'ok' if worst < tolerance else 'FAIL'}", flush=True)
    exact = search_is_exact(device)
    failures += not exact
    print("neighbour search exact on cuda:", exact, flush=True)
    return failures


if __name__ == "__main__":
    sys.exit(main())

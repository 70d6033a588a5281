"""CUDA check: CPModule (every path) against the reference, the search against brute force
(also with TF32 allowed), CUDA graphs (``torch.compile(mode="reduce-overhead")``) against eager,
CP under float16 and bfloat16 autocast, SyncBatchNorm across two ranks, the torch.export path
(whole-clip search, exported program at other N and T) and CP in a ConvNeXt (timm).

Run on a GPU machine (``python -m benchmarks.cuda_check``) before ``python -m benchmarks
--device cuda``; exits non-zero on a failure. The CPU tests cover the same ground on the CPU,
except SyncBatchNorm's own layers, which torch runs on accelerators only.
"""
import copy
import os
import socket
import sys
import tempfile

import torch
from torch import nn

from cp_plugin import CPModule, other_frame_knn
from cp_plugin.export import export_program
from cp_plugin.knn import search_whole_clip
from cp_plugin.reference import ReferenceCPModule
from cp_plugin.testing import cp_reduction_length, rounding_bound, search_rounding_bound

CONFIGS = (dict(in_channels=12, k=4, mlp_channels=(16, 8, 10)),
           dict(in_channels=12, k=4, mlp_channels=(16, 8, 10), checkpoint_pairs=True),
           dict(in_channels=16, k=2, bottleneck_channels=6, mlp_channels=(6,)),
           dict(in_channels=8, k=5, shrink=2))


# Each comparison below returns its largest difference in units of the rounding bound of
# cp_plugin.testing (the terms summed along the computation times eps times their scale), as the
# CPU tests compare: at most 1 passes, on any device.


def worst_difference(cfg: dict, dtype: torch.dtype, device: torch.device) -> float:
    """Largest fast-vs-reference difference in output and gradients, in rounding bounds."""
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
    # Gradients on the scale of the largest of them, as the CPU tests do (some are ~0).
    length = cp_reduction_length(fast, x)
    scale = max(float(g.abs().max()) for g in grads_ref)
    return max([float((out - out_ref).abs().max())
                / rounding_bound(length, out_ref.abs().max(), dtype)]
               + [float((g - r).abs().max()) / rounding_bound(length, scale, dtype)
                  for g, r in zip(grads, grads_ref)])


def search_is_exact(device: torch.device, whole_clip: bool = False,
                    lowered: bool = False) -> bool:
    """The search against a float64 brute force; ``lowered``: with float32 matmuls allowed
    TF32 (``set_float32_matmul_precision("high")``, ``allow_tf32``), as many users train."""
    points = torch.randn(2, 8 * 784, 64, device=device)
    saved = torch.get_float32_matmul_precision(), torch.backends.cuda.matmul.allow_tf32
    if lowered:
        torch.set_float32_matmul_precision("high")
        torch.backends.cuda.matmul.allow_tf32 = True
    try:
        indices = (search_whole_clip(points, 784, 8) if whole_clip
                   else other_frame_knn(points, 8, 8))
    finally:
        torch.set_float32_matmul_precision(saved[0])
        torch.backends.cuda.matmul.allow_tf32 = saved[1]
    distances = torch.cdist(points.double(), points.double()).pow(2)
    frame = torch.arange(points.shape[1], device=device) // 784
    distances = distances.masked_fill(frame[:, None] == frame[None], float("inf"))
    return torch.allclose(distances.gather(2, indices).sort(-1).values,
                          distances.topk(8, largest=False).values, rtol=0,
                          atol=search_rounding_bound(points, bfloat16_parts=lowered))


def graph_captured_difference(cfg: dict, device: torch.device) -> float:
    """``torch.compile(mode="reduce-overhead")`` (CUDA graphs), three training steps against
    eager: largest difference in output and gradients, in rounding bounds."""
    torch.manual_seed(0)
    eager = CPModule(**cfg).to(device).train()
    nn.init.uniform_(eager.out_norm.weight, 0.5, 1.5)  # so that the output depends on CP
    graphed = copy.deepcopy(eager)
    compiled = torch.compile(graphed, mode="reduce-overhead", fullgraph=True)
    worst = 0.0
    for step in range(3):
        x = torch.randn(2, cfg["in_channels"], 4, 7, 7, device=device)
        results = []
        for module, run in ((eager, eager), (graphed, compiled)):
            module.zero_grad()
            out = run(x).clone()  # a graph's outputs are overwritten by its next replay
            out.square().sum().backward()
            results.append([out.detach()] + [p.grad.clone() for p in module.parameters()])
        length = cp_reduction_length(eager, x)
        scale = max(float(g.abs().max()) for g in results[0][1:])
        worst = max([worst, float((results[1][0] - results[0][0]).abs().max())
                     / rounding_bound(length, results[0][0].abs().max())]
                    + [float((a - b).abs().max()) / rounding_bound(length, scale)
                       for a, b in zip(results[1][1:], results[0][1:])])
    return worst


def autocast_is_sound(cfg: dict, dtype: torch.dtype, device: torch.device) -> bool:
    """Finite outputs and gradients under autocast, and a gradient that reaches the input.

    Not compared with float32's output: features rounded to half precision before the search
    (a bottleneck under autocast) may pick other neighbours, which is autocast's trade."""
    torch.manual_seed(0)
    module = CPModule(**cfg).to(device).train()
    nn.init.ones_(module.out_norm.weight)  # so that the output depends on the CP branch
    x = torch.randn(2, cfg["in_channels"], 3, 6, 5, device=device, requires_grad=True)
    with torch.autocast(device.type, dtype=dtype):
        out = module(x)
    out.float().square().mean().backward()
    grads = [x.grad] + [p.grad for p in module.parameters()]
    return (bool(torch.isfinite(out).all()) and all(bool(torch.isfinite(g).all()) for g in grads)
            and bool(x.grad.abs().sum() > 0))


def search_under_autocast_is_exact(dtype: torch.dtype, device: torch.device) -> bool:
    points = torch.randn(2, 4 * 196, 256, device=device)
    with torch.autocast(device.type, dtype=dtype):
        indices = other_frame_knn(points, 4, 8)
    distances = torch.cdist(points.double(), points.double()).pow(2)
    frame = torch.arange(points.shape[1], device=device) // 196
    distances = distances.masked_fill(frame[:, None] == frame[None], float("inf"))
    chosen = distances.gather(2, indices).sort(-1).values
    true = distances.topk(8, largest=False).values
    return bool(((chosen - true).abs() <= search_rounding_bound(points)).all())


def exported_difference(device: torch.device) -> float:
    """Largest difference, in rounding bounds, between an exported CP module (N and T dynamic)
    and eager, at shapes other than the traced one."""
    torch.manual_seed(0)
    module = CPModule(32, k=4, bottleneck_channels=16).to(device).eval()
    nn.init.normal_(module.out_norm.weight)
    program = export_program(module, torch.randn(2, 32, 4, 7, 7, device=device)).module()
    worst = 0.0
    for shape in ((1, 32, 3, 7, 7), (3, 32, 8, 7, 7)):
        x = torch.randn(*shape, device=device)
        with torch.no_grad():
            expected = module(x)
            bound = rounding_bound(cp_reduction_length(module, x), expected.abs().max())
            worst = max(worst, float((program(x) - expected).abs().max()) / bound)
    return worst


def convnext_trains(device: torch.device) -> str:
    """CP after a ConvNeXt block's residual add (timm), one training step: '' or what failed."""
    try:
        import timm_adapters
    except ImportError as error:
        return f"timm_adapters not importable here ({error})"
    torch.manual_seed(0)
    model = timm_adapters.create_video_model("convnext_atto", ["stages.2.blocks.1"],
                                             num_classes=3).to(device)
    x = torch.randn(2, 3, 4, 64, 64, device=device)
    model.eval()
    with torch.no_grad():
        if not torch.equal(model(x), model(x)):
            return "eval outputs differ between calls"
    model.train()
    nn.functional.cross_entropy(model(x), torch.tensor([0, 2], device=device)).backward()
    cp_grads = [p.grad for n, p in model.named_parameters() if ".module." in n]
    return "" if cp_grads and all(g is not None and torch.isfinite(g).all() for g in cp_grads) \
        else "CP parameters got no finite gradient"


SYNC_CFG = dict(in_channels=12, k=4, bottleneck_channels=8, mlp_channels=(16, 8, 10))


def _sync_step(module, x, weight):
    x = x.clone().requires_grad_()
    out = module(x)
    (out * weight).sum().backward()
    return dict(out=out.detach(), x=x.grad, params=[p.grad for p in module.parameters()],
                buffers=[b.clone() for b in module.buffers() if b.is_floating_point()])


def _sync_problem(device):
    torch.manual_seed(0)
    module = CPModule(**SYNC_CFG)
    nn.init.uniform_(module.out_norm.weight, 0.5, 1.5)
    x = torch.randn(4, 12, 3, 6, 5, dtype=torch.float64)
    weight = torch.randn(4, 12, 3, 6, 5, dtype=torch.float64)
    return module.double().to(device).train(), x.to(device), weight.to(device)


def _sync_rank(rank, port, folder):
    """One of two ranks sharing the GPU: half of the batch through a SyncBatchNorm model."""
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}",
                                         rank=rank, world_size=2)
    device = torch.device("cuda")
    module, x, weight = _sync_problem(device)
    module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
    part = slice(2 * rank, 2 * rank + 2)
    result = _sync_step(module, x[part], weight[part])
    torch.save({k: v if isinstance(v, torch.Tensor) else [t.cpu() for t in v]
                for k, v in result.items()}, os.path.join(folder, f"rank{rank}.pt"))
    torch.distributed.destroy_process_group()


def syncbn_difference(device: torch.device) -> float:
    """Largest difference between two SyncBN ranks and one process on the whole batch, in
    rounding bounds, and the quantity where it is."""
    with tempfile.TemporaryDirectory() as folder, socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        torch.multiprocessing.spawn(_sync_rank, args=(port, folder), nprocs=2)
        ranks = [torch.load(os.path.join(folder, f"rank{r}.pt")) for r in range(2)]
    module, x, weight = _sync_problem(device)
    whole = _sync_step(copy.deepcopy(module), x, weight)
    names = [n for n, _ in module.named_parameters()]
    buffers = [n for n, b in module.named_buffers() if b.is_floating_point()]
    pairs = [(k, torch.cat([ranks[0][k].to(device), ranks[1][k].to(device)]), whole[k])
             for k in ("out", "x")]
    pairs += [(f"grad {n}", a.to(device) + b.to(device), c) for n, a, b, c
              in zip(names, ranks[0]["params"], ranks[1]["params"], whole["params"])]
    pairs += [(f"rank {i} {n}", a.to(device), c) for i, r in enumerate(ranks)
              for n, a, c in zip(buffers, r["buffers"], whole["buffers"])]
    # Gradients on the scale of the largest of them: some are zero up to rounding (a bias before
    # a BN with batch statistics, which removes any shift), where a ratio of noises means nothing.
    grad_scale = max(float(g.abs().max()) for g in whole["params"])
    length = cp_reduction_length(module, x)
    differences = {name: float((a - b).abs().max()) / rounding_bound(
        length, grad_scale if name.startswith("grad ") else b.abs().max(), torch.float64)
        for name, a, b in pairs}
    worst = max(differences, key=differences.get)
    return differences[worst], worst


def main() -> int:
    device = torch.device("cuda")
    print(torch.__version__, torch.cuda.get_device_name(device), flush=True)
    failures = 0
    for dtype in (torch.float64, torch.float32):
        for cfg in CONFIGS:
            worst = worst_difference(cfg, dtype, device)
            failures += worst > 1
            print(f"{dtype} {cfg}: worst difference {worst:.2e} of the rounding bound "
                  f"{'ok' if worst <= 1 else 'FAIL'}", flush=True)
    for lowered in (False, True):
        for whole_clip in (False, True):
            exact = search_is_exact(device, whole_clip, lowered)
            failures += not exact
            print(f"neighbour search{' (whole clip)' if whole_clip else ''}"
                  f"{' with TF32 allowed' if lowered else ''} exact on cuda: {exact}", flush=True)
    for cfg in (dict(in_channels=64, k=4), dict(in_channels=64, k=4, bottleneck_channels=16,
                                                 mlp_channels=(16,))):
        try:
            worst = graph_captured_difference(cfg, device)
            problem = "" if worst <= 1 else f"worst difference {worst:.2e} of the rounding bound"
        except Exception as error:  # report and go on: the other checks still tell
            problem, worst = f"{type(error).__name__}: {error}", float("nan")
        failures += bool(problem)
        print(f"torch.compile(mode='reduce-overhead') {cfg}, 3 training steps vs eager: "
              f"{problem or f'worst difference {worst:.2e} of the rounding bound ok'}", flush=True)
    worst = exported_difference(device)
    failures += worst > 1
    print(f"torch.export program (N, T dynamic) vs eager at other N, T: worst difference "
          f"{worst:.2e} of the rounding bound {'ok' if worst <= 1 else 'FAIL'}", flush=True)
    problem = convnext_trains(device)
    failures += bool(problem)
    print(f"CP in timm ConvNeXt, eval and one training step: {problem or 'ok'}", flush=True)
    for dtype in (torch.float16, torch.bfloat16):
        for cfg in CONFIGS:
            sound = autocast_is_sound(cfg, dtype, device)
            failures += not sound
            print(f"autocast {dtype} {cfg}: {'ok' if sound else 'FAIL'}", flush=True)
        exact = search_under_autocast_is_exact(dtype, device)
        failures += not exact
        print(f"search under {dtype} autocast exact to float32 rounding: {exact}", flush=True)
    worst, where = syncbn_difference(device)
    failures += worst > 1
    print(f"SyncBatchNorm, 2 ranks (gloo) on one GPU vs one process, float64: worst difference "
          f"{worst:.2e} of the rounding bound ({where}) {'ok' if worst <= 1 else 'FAIL'}",
          flush=True)
    return failures


if __name__ == "__main__":
    sys.exit(main())

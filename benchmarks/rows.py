"""The rows of `make bench`: each measures our code and its comparison side by side.

Every group yields ``(row name, dict(ours, baseline, ratio, unit))`` as each row is measured,
so that `make bench` prints it at once.
"""
from __future__ import annotations

import importlib.util
import os
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import torch

from cp_plugin import CPModule, other_frame_knn, reference
from cp_plugin.device_paths import ACCELERATOR_PATHS, use_device_paths

from cp_plugin.measure import (alternating_medians, alternating_medians_of, dispatched_ops,
                      peak_memory_bytes)


def mmaction_installed() -> bool:
    return importlib.util.find_spec("mmaction") is not None


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIB = 2.0 ** 20
Rows = Iterator[Tuple[str, Dict]]

#: The shapes of the module rows: ResNet-18's res3 and res4 on 8 frames of 224 x 224.
MODULE_SHAPES = {"res3": (128, 28), "res4": (256, 14)}
MODULE_BATCH, MODULE_FRAMES = 4, 8
#: Points per clip in the neighbour-search rows: 8 frames of 128 .. 3136 (56 x 56) points.
KNN_POINTS_PER_FRAME = (128, 256, 512, 1024, 2048, 3136)


def row(ours: float, baseline: float, unit: str) -> Dict:
    return dict(ours=ours, baseline=baseline, ratio=ours / baseline, unit=unit)


def time_and_memory(name: str, ours: Callable[[], None], baseline: Callable[[], None],
                    device: torch.device, repeats: int) -> Dict[str, Dict]:
    t_ours, t_base = alternating_medians(ours, baseline, repeats=repeats, device=device)
    m_ours, m_base = (peak_memory_bytes(fn, device) / MIB for fn in (ours, baseline))
    return {f"{name} time": row(t_ours, t_base, "s"),
            f"{name} peak memory": row(m_ours, m_base, "MiB")}


def forward_backward(module: torch.nn.Module, x: torch.Tensor,
                     amp: bool = False) -> Callable[[], None]:
    """One forward and backward of ``module`` on ``x``; ``amp``: under bfloat16 autocast."""
    def run():
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
            out = module(x.clone().requires_grad_())
        out.float().sum().backward()
    return run


def nonlocal_block(channels: int) -> torch.nn.Module:
    """mmcv's NonLocal3d as the Non-local baseline configs build it."""
    from mmcv.cnn import NonLocal3d

    return NonLocal3d(channels, reduction=2, use_scale=True, sub_sample=True,
                      mode="embedded_gaussian", norm_cfg=dict(type="BN3d"))


#: On a GPU, also the issue's GPU target: ResNet-50's res4 at batch 8.
GPU_MODULE_SHAPES = {"R50 res4": (1024, 14, 8)}


def module_rows(device: torch.device, repeats: int) -> Rows:
    """CP forward+backward against the naive reference and against a Non-local block."""
    shapes = {stage: (c, size, MODULE_BATCH) for stage, (c, size) in MODULE_SHAPES.items()}
    if device.type == "cuda":
        shapes.update(GPU_MODULE_SHAPES)
    for stage, (channels, size, batch) in shapes.items():
        torch.manual_seed(0)
        x = torch.randn(batch, channels, MODULE_FRAMES, size, size, device=device)
        shape = f"C={channels} {MODULE_FRAMES}x{size}x{size} N={batch}"
        ours = CPModule(channels, k=8).to(device)
        naive = reference.ReferenceCPModule(channels, k=8).to(device)
        naive.load_state_dict(ours.state_dict())
        yield from time_and_memory(f"CP vs reference, {stage} {shape}", forward_backward(ours, x),
                                   forward_backward(naive, x), device, repeats).items()
        non_local = forward_backward(nonlocal_block(channels).to(device), x)
        yield from time_and_memory(f"CP vs NonLocal3d, {stage} {shape}",
                                   forward_backward(ours, x), non_local, device, repeats).items()
        lean = CPModule(channels, k=8, checkpoint_pairs=True).to(device)
        yield from time_and_memory(f"CP checkpoint_pairs vs NonLocal3d, {stage} {shape}",
                                   forward_backward(lean, x), non_local, device, repeats).items()


def build_recognizer(config: str, device: torch.device, depth: Optional[int] = None) -> torch.nn.Module:
    """The recognizer of ``config`` with random weights; ``depth`` another ResNet depth, its
    CP or Non-local placement the presets' for that depth."""
    from mmaction.registry import MODELS
    from mmengine.config import Config

    model_cfg = Config.fromfile(os.path.join(ROOT, "mmaction_configs", config)).model
    model_cfg.backbone.backbone.pretrained = None  # random weights: no checkpoint download
    if depth is not None:
        model_cfg.backbone.backbone.depth = depth
        if "cp_blocks" in model_cfg.backbone:
            model_cfg.backbone.cp_blocks = f"resnet{depth}"
        for insertion in model_cfg.backbone.get("insertions", []):
            insertion.blocks = f"resnet{depth}"
    return MODELS.build(model_cfg).to(device)


def train_step(config: str, data: dict, device: torch.device, depth: Optional[int] = None,
               amp: bool = False) -> Callable[[], None]:
    """One SGD step of the model of ``config`` (random weights) on ``data``; ``amp``: under
    bfloat16 autocast, as mmengine's AmpOptimWrapper runs it."""
    from mmengine.optim import AmpOptimWrapper, OptimWrapper

    model = build_recognizer(config, device, depth)
    sgd = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    optim = AmpOptimWrapper(sgd, dtype="bfloat16") if amp else OptimWrapper(sgd)
    return lambda: model.train_step(data, optim)


def random_clips(batch: int, size: int, frames: int = 8) -> dict:
    from mmaction.structures import ActionDataSample

    generator = torch.Generator().manual_seed(0)
    return dict(
        inputs=[torch.randint(0, 256, (1, 3, frames, size, size), dtype=torch.uint8,
                              generator=generator) for _ in range(batch)],
        data_samples=[ActionDataSample().set_gt_label(3 + 4 * i) for i in range(batch)])


def train_step_rows(device: torch.device, repeats: int) -> Rows:
    """A whole SGD step of CPNet-R18 (authors' placement) against plain C2D-R18."""
    for size in (112, 224):
        data = random_clips(2, size)
        yield from time_and_memory(
            f"train step CPNet-R18 vs C2D-R18, 8x{size}x{size} N=2",
            train_step("_base_/models/cpnet_r18.py", data, device),
            train_step("_base_/models/c2d_r18.py", data, device), device, repeats).items()


#: The authors' CP module of ResNet-101's res4 (preset 'resnet101') and that stage's width.
PAPER_CP = dict(k=4, bottleneck_channels=128, mlp_channels=(128,))
PAPER_CHANNELS, PAPER_SIZE, PAPER_BATCH = 1024, 14, 2
#: Issue 24's shapes (GPU rows, op counts): (name, channels, CP options, H = W, N), 8 frames.
GPU_SHAPES = (("R18 res3", 128, dict(k=8), 28, 4), ("R18 res4", 256, dict(k=8), 14, 4),
              ("R50 res4", 1024, dict(k=8), 14, 8),
              ("paper R101 res4", PAPER_CHANNELS, PAPER_CP, PAPER_SIZE, PAPER_BATCH))


def paper_rows(device: torch.device, repeats: int) -> Rows:
    """The pairing the paper makes: CP and Non-local in ResNet-101, module and whole model."""
    torch.manual_seed(0)
    x = torch.randn(PAPER_BATCH, PAPER_CHANNELS, MODULE_FRAMES, PAPER_SIZE, PAPER_SIZE,
                    device=device)
    shape = f"C={PAPER_CHANNELS} {MODULE_FRAMES}x{PAPER_SIZE}x{PAPER_SIZE} N={PAPER_BATCH}"
    yield from time_and_memory(
        f"paper's pair: CP (R101 res4: bottleneck 128, k=4) vs NonLocal3d, {shape}",
        forward_backward(CPModule(PAPER_CHANNELS, **PAPER_CP).to(device), x),
        forward_backward(nonlocal_block(PAPER_CHANNELS).to(device), x), device, repeats).items()

    if not mmaction_installed():  # e.g. a GPU machine with torch alone: the module row only
        return
    data = random_clips(1, 224)
    steps = {name: train_step(f"_base_/models/{config}.py", data, device)
             for name, config in (("CPNet", "cpnet_r101"), ("NL", "nl_c2d_r101"),
                                  ("C2D", "c2d_r101"))}
    seconds = alternating_medians_of(steps, repeats=repeats, device=device)
    overhead = {name: seconds[name] - seconds["C2D"] for name in ("CPNet", "NL")}
    name = "paper's pair: train step overhead over C2D-R101, CPNet-R101 vs NL C2D-R101, 8x224x224 N=1"
    yield f"{name} time", row(overhead["CPNet"], overhead["NL"], "s")
    memory = {key: peak_memory_bytes(steps[key], device) / MIB for key in ("CPNet", "NL")}
    yield ("paper's pair: train step CPNet-R101 vs NL C2D-R101, 8x224x224 N=1 peak memory",
           row(memory["CPNet"], memory["NL"], "MiB"))
    for key in ("CPNet", "C2D"):  # the steps behind the overhead
        yield (f"paper's pair: train step {key}-R101 vs NL C2D-R101, 8x224x224 N=1 time",
               row(seconds[key], seconds["NL"], "s"))


#: Entry points whose import cost is measured, each beside what it needs anyway.
IMPORTS = {"cp_plugin": "torch", "timm_adapters": "torch, timm"}


def import_rows(device: torch.device, repeats: int) -> Rows:
    """Seconds an import adds to a fresh interpreter that imports what it needs anyway
    (``import torch; import cp_plugin`` against ``import torch``), medians over alternating
    runs: a library imported by every user of torch must cost them little."""
    import subprocess
    import sys

    def importing(modules: str):
        return lambda: subprocess.run([sys.executable, "-c", f"import {modules}"], check=True)

    for entry, needed in IMPORTS.items():
        seconds = alternating_medians_of(
            dict(ours=importing(f"{needed}, {entry}"), baseline=importing(needed)),
            repeats=repeats)
        added = seconds["ours"] - seconds["baseline"]
        yield f"import {entry}: seconds added to import {needed}", row(added, seconds["baseline"], "s")

def dispatch_rows(device: torch.device, repeats: int) -> Rows:
    """Aten ops (views aside) and host syncs of one forward + backward, CP against NonLocal3d,
    CP on its GPU paths (``ACCELERATOR_PATHS``): on a GPU, kernel launches and stalls of its queue.
    Counted once; the same on every machine."""
    for stage, channels, options, size, batch in GPU_SHAPES:
        torch.manual_seed(0)
        x = torch.randn(batch, channels, MODULE_FRAMES, size, size, device=device)
        name = f"CP vs NonLocal3d, {stage} C={channels} {MODULE_FRAMES}x{size}x{size} N={batch}"
        with use_device_paths(device, ACCELERATOR_PATHS):
            cp = dispatched_ops(forward_backward(CPModule(channels, **options).to(device), x))
        non_local = dispatched_ops(forward_backward(nonlocal_block(channels).to(device), x))
        yield f"{name} aten ops", row(cp[0], non_local[0], "ops")
        yield f"{name} host syncs", dict(ours=cp[1], baseline=non_local[1],
                                         ratio=cp[1] / non_local[1] if non_local[1] else None,
                                         unit="syncs")


#: How the GPU rows compile (the tests use "aot_eager": inductor takes minutes on 2 CPU cores).
COMPILE_BACKEND = "inductor"


def gpu_rows(device: torch.device, repeats: int) -> Rows:
    """CP against NonLocal3d, forward + backward, eager, at :data:`GPU_SHAPES`, in float32 and
    under bfloat16 autocast; then whole SGD steps, float32 and AMP: CPNet-R101's overhead over
    C2D-R101 against NL C2D-R101's, and CPNet-R50 against NL C2D-R50. Made for a GPU."""
    for amp in (False, True):
        yield from _module_pairs(device, repeats, amp, compiled=False, shapes=GPU_SHAPES)
    if not mmaction_installed():
        return
    for amp in (False, True):
        variant = "AMP bf16" if amp else "float32"
        data = random_clips(1, 224)
        steps = {name: train_step(f"_base_/models/{config}.py", data, device, amp=amp)
                 for name, config in (("CPNet", "cpnet_r101"), ("NL", "nl_c2d_r101"),
                                      ("C2D", "c2d_r101"))}
        seconds = alternating_medians_of(steps, repeats=repeats, device=device)
        yield (f"GPU {variant}: train step overhead over C2D-R101, CPNet-R101 vs NL C2D-R101, "
               f"8x224x224 N=1 time",
               row(seconds["CPNet"] - seconds["C2D"], seconds["NL"] - seconds["C2D"], "s"))
        data = random_clips(2, 224)
        yield from time_and_memory(
            f"GPU {variant}: train step CPNet-R50 vs NL C2D-R50, 8x224x224 N=2",
            train_step("_base_/models/cpnet_r101.py", data, device, depth=50, amp=amp),
            train_step("_base_/models/nl_c2d_r101.py", data, device, depth=50, amp=amp),
            device, repeats).items()


#: The shapes of the compiled GPU rows: the targets' (compiling takes most of their time).
COMPILED_SHAPES = ("R50 res4", "paper R101 res4")


def gpu_compiled_rows(device: torch.device, repeats: int) -> Rows:
    """:func:`gpu_rows`' module rows at :data:`COMPILED_SHAPES`, each module compiled alone
    (``torch.compile(fullgraph=True)``, :data:`COMPILE_BACKEND`)."""
    shapes = [shape for shape in GPU_SHAPES if shape[0] in COMPILED_SHAPES]
    for amp in (False, True):
        yield from _module_pairs(device, repeats, amp, compiled=True, shapes=shapes)


def _module_pairs(device, repeats, amp, compiled, shapes) -> Rows:
    variant = f"{'AMP bf16' if amp else 'float32'} {'compiled' if compiled else 'eager'}"
    for stage, channels, options, size, batch in shapes:
        torch.manual_seed(0)
        x = torch.randn(batch, channels, MODULE_FRAMES, size, size, device=device)
        runs = []
        for module in (CPModule(channels, **options), nonlocal_block(channels)):
            module = module.to(device)
            if compiled:
                module = torch.compile(module, backend=COMPILE_BACKEND, fullgraph=True)
            runs.append(forward_backward(module, x, amp))
        t_ours, t_base = alternating_medians(*runs, repeats=repeats, device=device)
        yield (f"GPU {variant}: CP vs NonLocal3d, {stage} C={channels} "
               f"{MODULE_FRAMES}x{size}x{size} N={batch} time", row(t_ours, t_base, "s"))


def toy_epoch_rows(device: torch.device, repeats: int) -> Rows:
    """One training epoch of Table 1's toy set (1000 videos, batch 32): CPNet against C2D."""
    import cp_plugin.toy.mmaction  # noqa: F401  (registers the toy set and layers)
    from mmaction.registry import DATASETS, MODELS
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate
    from mmengine.optim import OptimWrapper

    def epoch(config):
        cfg = Config.fromfile(os.path.join(ROOT, "mmaction_configs", "toy", config))
        torch.manual_seed(0)
        model = MODELS.build(cfg.model).to(device)
        optim = OptimWrapper(torch.optim.Adam(model.parameters(), lr=3e-3))
        loader = torch.utils.data.DataLoader(
            DATASETS.build(cfg.train_dataloader.dataset), batch_size=32, shuffle=True,
            collate_fn=pseudo_collate, generator=torch.Generator().manual_seed(0))

        def run():
            for data in loader:
                model.train_step(data, optim)
        return run

    ours, baseline = alternating_medians(epoch("cpnet_toy.py"), epoch("c2d_toy.py"),
                                         repeats=repeats, warmup=0, device=device)
    yield "toy epoch CPNet vs C2D, 1000 videos N=32", row(ours, baseline, "s")


def toy_nonlocal_rows(device: torch.device, repeats: int) -> Rows:
    """The toy I3D-NL block at full resolution: FusedNonLocal3d against mmcv's NonLocal3d."""
    from mmcv.cnn import NonLocal3d

    from cp_plugin.mmaction import FusedNonLocal3d

    kwargs = dict(reduction=2, use_scale=True, sub_sample=False, mode="embedded_gaussian",
                  norm_cfg=dict(type="BN3d"))
    torch.manual_seed(0)
    x = torch.randn(32, 16, 4, 32, 32, device=device)
    yield from time_and_memory("toy NL block FusedNonLocal3d vs NonLocal3d, C=16 4x32x32 N=32",
                               forward_backward(FusedNonLocal3d(16, **kwargs).to(device), x),
                               forward_backward(NonLocal3d(16, **kwargs).to(device), x),
                               device, repeats).items()


def knn_rows(device: torch.device, repeats: int) -> Rows:
    """Neighbour search alone (C=64, k=8, 8 frames) against the full score matrix."""
    for per_frame in KNN_POINTS_PER_FRAME:
        points = torch.randn(1, 8 * per_frame, 64, device=device,
                             generator=torch.Generator(device).manual_seed(0))
        yield from time_and_memory(
            f"kNN vs full matrix, {8 * per_frame} points C=64",
            lambda: other_frame_knn(points, 8, 8), lambda: reference.other_frame_knn(points, 8, 8),
            device, repeats).items()


def plot_knn_memory(rows: Dict[str, Dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in rows if n.startswith("kNN") and n.endswith("peak memory")]
    points: List[int] = [8 * p for p in KNN_POINTS_PER_FRAME]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(points, [rows[n]["ours"] for n in names], "o-", label="other_frame_knn (chunked)")
    ax.plot(points, [rows[n]["baseline"] for n in names], "s--", label="full score matrix")
    ax.set_xlabel("points per clip (T*H*W), C=64, k=8")
    ax.set_ylabel("peak extra memory (MiB)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

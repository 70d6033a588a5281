"""Parameters and FLOPs of C2D, C2D + Non-local and CPNet with ResNet-18, -34 and -101 backbones,
beside the CPNet paper's parameter counts (Tables 4 and 5).

FLOPs are counted as multiply-accumulates (MACs; mmengine and fvcore call them "flops") of the
matrix products and convolutions of one clip's forward, by torch's ``FlopCounterMode`` on an
eager forward. (mmengine's tracing counter cannot trace these models: their layout checks need
Python ints.) CPNet is counted as its C2D backbone plus every CP module counted step by step
(:func:`cp_plugin.analysis.cost.cp_module_cost`, which ``tests/analysis/test_complexity.py`` checks against
``FlopCounterMode``), with the top-k, gather and max that no operator counter sees listed apart.
``tools/complexity.py`` is its command line.
"""
from __future__ import annotations

import os.path as osp
import re
from typing import Dict, List, Optional

import torch
from torch import nn

from ..analysis.cost import cp_module_cost
from ..cp_module import CPModule

#: The model configs, in a clone of the repository.
MODEL_DIR = osp.join(osp.dirname(__file__), "..", "..", "mmaction_configs", "_base_", "models")
KINDS = ("C2D", "C2D+NL", "CPNet")
# Per depth: the paper's dataset (classes), clip length and parameter counts (millions).
SETTINGS = {
    18: dict(dataset="Something-Something v2", classes=174, frames=24,
             paper={"C2D": 10.7, "CPNet": 11.3}, table="5(a)"),
    34: dict(dataset="Something-Something v2", classes=174, frames=24,
             paper={"C2D": 20.3, "CPNet": 21.0}, table="5(a)"),
    101: dict(dataset="Kinetics-400", classes=400, frames=32,
              paper={"C2D+NL": 48.2, "CPNet": 42.1}, table="4"),
}
SIZE = 224
# Output stride of each ResNet stage (layer1 = res2), to know the map a CP module sees.
STAGE_STRIDE = {1: 4, 2: 8, 3: 16, 4: 32}


def model_config(kind: str, depth: int, classes: int):
    """The model config of ``kind`` at ``depth`` with ``classes`` classes, no ImageNet weights."""
    from mmengine.config import Config

    if kind == "C2D+NL" and depth == 34:  # no shipped NL R34 config: C2D R34 + the NL preset
        cfg = Config.fromfile(osp.join(MODEL_DIR, "nl_c2d_r18.py"))
        cfg.model.backbone.backbone.depth = 34
        cfg.model.backbone.insertions[0].blocks = "resnet34"
    else:
        name = {"C2D": "c2d", "C2D+NL": "nl_c2d", "CPNet": "cpnet"}[kind]
        cfg = Config.fromfile(osp.join(MODEL_DIR, f"{name}_r{depth}.py"))
    cfg.model.backbone.backbone.pretrained = None
    cfg.model.cls_head.num_classes = classes
    return cfg.model


def build(kind: str, depth: int, classes: int) -> nn.Module:
    """The recognizer of ``kind`` (C2D, C2D+NL, CPNet) at ``depth``, random weights, eval mode."""
    from mmaction.registry import MODELS
    from mmengine.registry import init_default_scope

    init_default_scope("mmaction")
    return MODELS.build(model_config(kind, depth, classes)).eval()


class _Clip(nn.Module):
    """Backbone and head on a (1, 3, T, H, W) clip."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        return self.model.cls_head(self.model.backbone(clip))


def matmul_macs(model: nn.Module, frames: int, size: int) -> int:
    """MACs of the matrix products and convolutions of one clip's forward."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        _Clip(model)(torch.randn(1, 3, frames, size, size))
    return counter.get_total_flops() // 2


def cp_costs(model: nn.Module, frames: int, size: int) -> Dict[str, Dict[str, int]]:
    """Every CP module's cost, from the map its block hands it (ResNet stage strides)."""
    costs = {}
    for name, module in model.named_modules():
        if isinstance(module, CPModule):
            stage = int(re.search(r"layer(\d)", name).group(1))
            side = size // STAGE_STRIDE[stage]
            costs[name] = cp_module_cost(module, (1, module.in_channels, frames, side, side))
    return costs


def complexity(depths=(18, 34, 101), flops: bool = True, frames: Optional[int] = None,
               size: int = SIZE) -> List[dict]:
    """One row per (depth, model): parameters, the paper's, and (with ``flops``) MACs."""
    rows = []
    for depth in depths:
        setting = SETTINGS[depth]
        clip_len = frames or setting["frames"]
        c2d_macs = None
        for kind in KINDS:
            model = build(kind, depth, setting["classes"])
            row = dict(depth=depth, model=kind, dataset=setting["dataset"], frames=clip_len,
                       params=sum(p.numel() for p in model.parameters()),
                       paper_params=setting["paper"].get(kind), table=setting["table"])
            if flops:
                if kind == "CPNet":
                    row["cp"] = cp_costs(model, clip_len, size)
                    row["cp_macs"] = sum(c["macs"] for c in row["cp"].values())
                    row["macs"] = c2d_macs + row["cp_macs"]
                else:
                    row["macs"] = matmul_macs(model, clip_len, size)
                    c2d_macs = row["macs"] if kind == "C2D" else c2d_macs
            rows.append(row)
    return rows


def markdown(rows: List[dict], size: int = SIZE) -> str:
    """The rows as README's complexity table, and the CP modules' costs summed per model."""
    flops = "macs" in rows[0]
    head = "| backbone | model | classes (dataset) | params (M) | paper (M) |"
    rule = "|---|---|---|---|---|"
    if flops:
        head += " input | GMACs |"
        rule += "---|---|"
    lines = [head, rule]
    for row in rows:
        paper = "-" if row["paper_params"] is None else f"{row['paper_params']:.1f} (Table {row['table']})"
        line = (f"| ResNet-{row['depth']} | {row['model']} | {SETTINGS[row['depth']]['classes']} "
                f"({row['dataset']}) | {row['params'] / 1e6:.2f} | {paper} |")
        if flops:
            line += f" {row['frames']}x{size}x{size} | {row['macs'] / 1e9:.1f} |"
        lines.append(line)
    if flops:
        keys = ("search", "embedding", "output", "bottleneck", "macs", "topk", "gather", "max",
                "norm", "resize")
        lines += ["", "CP modules of each CPNet, summed, per forward of one clip (G = 1e9; MACs of "
                  "matrix products, then element operations that operator counters do not see):",
                  "", "| backbone | CP modules | search GMACs | embedding GMACs | output GMACs | "
                  "bottleneck GMACs | total GMACs | top-k G | gather G | max G | BN G | resize G |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for row in rows:
            if "cp" in row:
                total = [sum(c[key] for c in row["cp"].values()) for key in keys]
                lines.append(f"| ResNet-{row['depth']} | {len(row['cp'])} | "
                             + " | ".join(f"{value / 1e9:.2f}" for value in total) + " |")
    return "\n".join(lines) + "\n"

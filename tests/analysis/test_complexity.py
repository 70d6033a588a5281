"""tools/complexity.py and cp_plugin.analysis.cost: exact parameter counts, CP costs checked by a tracer."""
import os

import pytest
import torch
from mmaction.registry import MODELS
from mmengine.config import Config
from mmengine.registry import init_default_scope

from cp_plugin import CPModule
from cp_plugin.analysis.cost import cp_module_cost
from cp_plugin.mmaction import complexity
from tools import complexity as tool

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "mmaction_configs")
# (depth, model) -> a shipped config with the same backbone and number of classes.
SHIPPED = {
    (18, "C2D"): "sthv2/c2d_r18_12x2_sthv2_phase1.py",
    (18, "CPNet"): "sthv2/cpnet_r18_12x2_sthv2_phase1.py",
    (34, "C2D"): "sthv2/c2d_r34_12x2_sthv2_phase1.py",
    (34, "CPNet"): "sthv2/cpnet_r34_12x2_sthv2_phase1.py",
    (101, "C2D+NL"): "kinetics400/nl-c2d_r101_8x8_kinetics400_phase1.py",
    (101, "CPNet"): "kinetics400/cpnet_r101_8x8_kinetics400_phase1.py",
}


def test_parameter_counts_are_exact():
    rows = {(r["depth"], r["model"]): r for r in complexity.complexity(flops=False)}
    assert len(rows) == 9
    init_default_scope("mmaction")
    for key, config in SHIPPED.items():
        cfg = Config.fromfile(os.path.join(CONFIGS, config))
        cfg.model.backbone.backbone.pretrained = None
        model = MODELS.build(cfg.model)
        assert rows[key]["params"] == sum(p.numel() for p in model.parameters()), key
    for depth in (18, 34, 101):
        cpnet = complexity.build("CPNet", depth, complexity.SETTINGS[depth]["classes"])
        cp_params = sum(p.numel() for m in cpnet.modules() if isinstance(m, CPModule)
                        for p in m.parameters())
        assert rows[(depth, "CPNet")]["params"] - rows[(depth, "C2D")]["params"] == cp_params
        assert rows[(depth, "C2D+NL")]["params"] > rows[(depth, "C2D")]["params"]


@pytest.mark.parametrize("search", ["whole-clip", "per-frame"])
@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("cfg", [dict(in_channels=16, k=3), dict(in_channels=16, k=2, shrink=2),
                                 dict(in_channels=16, k=4, bottleneck_channels=8, mlp_channels=(8,))],
                         ids=["plain", "shrink", "bottleneck"])
def test_cost_counts_every_matmul_the_module_runs(cpu_paths, cfg, train, search):
    """torch's FlopCounterMode sees every matrix product and convolution the forward runs, the
    fused pair embedding's included: exactly our MAC count (2 FLOPs per MAC)."""
    from torch.utils.flop_counter import FlopCounterMode

    # The CPU's own path, and the GPU's, which scores whole clips when they fit the budget.
    cpu_paths(whole_clip_search=search == "whole-clip")
    module = CPModule(**cfg).train(train)
    shape = (2, 16, 3, 8, 6)
    cost = cp_module_cost(module, shape)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        module(torch.randn(shape))
    assert counter.get_total_flops() == 2 * cost["macs"]
    n, c, t, h, w = shape
    per_frame = (h // module.shrink) * (w // module.shrink)
    scored = (t if search == "whole-clip" else t - 1) * per_frame
    assert cost["topk"] == n * t * per_frame * scored


def test_table_with_flops_on_small_clips():
    rows = tool.main(["--depths", "18", "--frames", "4", "--size", "64"])
    by_model = {r["model"]: r for r in rows}
    cpnet, c2d = by_model["CPNet"], by_model["C2D"]
    assert len(cpnet["cp"]) == 4
    assert cpnet["macs"] == c2d["macs"] + cpnet["cp_macs"] and cpnet["cp_macs"] > 0
    assert by_model["C2D+NL"]["macs"] > c2d["macs"]
    # C2D's count plus ours for the CP modules is what runs in the whole CPNet's forward.
    assert cpnet["macs"] == complexity.matmul_macs(complexity.build("CPNet", 18, 174), 4, 64)

"""Named block placements: the CPNet authors' CP modules and the Non-local paper's NL blocks.

Block names are torch module paths of a torchvision-style ResNet: ``layer2`` is res3 and
``layer3`` is res4. Each entry is a name or ``dict(block=name, **per_block_options)``.
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Sequence, Tuple, Union

from .validation import unknown_name_message


def _blocks(stage: int, indices, **options) -> List:
    return [dict(block=f"layer{stage}.{i}", **options) if options else f"layer{stage}.{i}"
            for i in indices]


# From the authors' TensorFlow models (research/baselines.md section 5.2): k, MLP widths,
# the x2 spatial shrink before the search in res3 and the C/8 bottleneck of ResNet-101.
CP_PRESETS: Dict[str, dict] = {
    # Every block of res3 and res4 (4 CP modules).
    "resnet18": dict(k=8, blocks=_blocks(2, (0, 1), shrink=2) + _blocks(3, (0, 1))),
    # The paper's Table 2 for Kinetics: every block of res3, res4 and res5 (6 CP modules).
    "resnet18-6cp": dict(k=8, blocks=_blocks(2, (0, 1), shrink=2) + _blocks(3, (0, 1))
                         + _blocks(4, (0, 1))),
    # The last 2 blocks of res3 and the last 3 of res4 (5 CP modules).
    "resnet34": dict(k=8, blocks=_blocks(2, (2, 3), shrink=2) + _blocks(3, (3, 4, 5))),
    "resnet101": dict(k=4, blocks=(
        _blocks(2, (2, 3), shrink=2, bottleneck_channels=64, mlp_channels=(64,))
        + _blocks(3, (20, 21, 22), bottleneck_channels=128, mlp_channels=(128,)))),
    # Not in the paper: ResNet-101's bottlenecked modules at ResNet-34's positions (which
    # ResNet-50 shares: 3, 4, 6, 3 blocks).
    "resnet50": dict(k=4, blocks=(
        _blocks(2, (2, 3), shrink=2, bottleneck_channels=64, mlp_channels=(64,))
        + _blocks(3, (3, 4, 5), bottleneck_channels=128, mlp_channels=(128,)))),
}

# Non-local paper: one NL block after every other residual block of res3 and res4, starting at
# the second; ResNet-101's res4 uses every 7th block (research/baselines.md section 2.2).
NONLOCAL_PRESETS: Dict[str, dict] = {
    "resnet18": dict(blocks=_blocks(2, (1,)) + _blocks(3, (1,))),
    "resnet34": dict(blocks=_blocks(2, (1, 3)) + _blocks(3, (1, 3, 5))),
    "resnet50": dict(blocks=_blocks(2, (1, 3)) + _blocks(3, (1, 3, 5))),
    "resnet101": dict(blocks=_blocks(2, (1, 3)) + _blocks(3, (6, 13, 20))),
}


def resolve_placement(blocks: Union[str, Sequence], presets: Mapping[str, dict],
                      argument: str) -> Tuple[List, dict]:
    """Turn a preset name or a block list into (block entries, default module options)."""
    if isinstance(blocks, str):
        if blocks not in presets:
            raise ValueError(unknown_name_message(argument, blocks, presets, "preset")
                             + ", or a list of block names such as ['layer3.0', 'layer3.1']")
        preset = dict(presets[blocks])
        return list(preset.pop("blocks")), preset
    if blocks is None:
        return [], {}
    return list(blocks), {}

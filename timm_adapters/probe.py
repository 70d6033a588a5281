"""A one-image forward that checks each chosen timm block ends as its table entry says.

The same class can differ per instance (a block built without a shortcut), and a registration
can be wrong: the probe counts, per chosen block, the calls of the block and of its final
activation, checks that the activation's output is the block's, and measures the channels there
(the CP module's ``in_channels``).
"""
from __future__ import annotations

from typing import Dict, List

import torch
from torch import nn

from cp_plugin.insertion import FoundBlock, sites_removed, unsupported_block

#: Side of the square image of the probe forward.
PROBE_SIZE = 64


def probe_blocks(model: nn.Module, blocks: Dict[str, FoundBlock],
                 what: str = "a CP module") -> Dict[str, int]:
    """The channels at each chosen block's insertion point, after checking that its final
    activation runs once per call of the block, last (or, for a block that ends with its
    residual add, that it runs).

    The forward runs in eval mode without gradients on a zero image and with any earlier
    insertions taken out, so it changes no weights, statistics or modes.
    """
    if not blocks:
        return {}
    stats = {name: dict(block_calls=0, act_calls=0, channels=0, last=True, out=None)
             for name in blocks}
    handles: List = []
    modes = [(m, m.training) for m in model.modules()]
    try:
        with sites_removed(model), torch.no_grad():
            for name, block in blocks.items():
                activation = (None if block.spec.activation is None
                              else getattr(block.module, block.spec.activation))
                handles += _count_calls(block.module, activation, stats[name])
            model.eval()
            try:
                model(_probe_input(model))
            except Exception as error:
                raise RuntimeError(
                    f"could not run {type(model).__name__} on a (1, C, {PROBE_SIZE}, "
                    f"{PROBE_SIZE}) probe image to check the chosen blocks: {error}") from error
    finally:
        for handle in handles:
            handle.remove()
        for module, mode in modes:
            module.training = mode

    for name, s in stats.items():
        block, attr = blocks[name].module, blocks[name].spec.activation
        if s["block_calls"] == 0:
            raise unsupported_block(name, block, what, "the block never runs in this model's "
                                    "forward", "Choose a block the model uses.")
        if attr is None:
            continue
        if s["act_calls"] != s["block_calls"]:
            raise unsupported_block(
                name, block, what, f"shared activation: `{attr}` ran {s['act_calls']} time(s) "
                f"during {s['block_calls']} call(s) of the block", "Choose another block.")
        if not s["last"]:
            raise unsupported_block(name, block, what, f"`{attr}` is not the last step of the "
                                    f"block (its output is not the block's output)",
                                    "Choose another block.")
    return {name: s["channels"] for name, s in stats.items()}


def _count_calls(block: nn.Module, activation, stat: dict) -> list:
    def before_act(module, args):
        stat["act_calls"] += 1
        stat["channels"] = args[0].shape[1]

    def after_act(module, args, output):
        stat["out"] = output

    def after_block(module, args, output):
        stat["block_calls"] += 1
        if activation is None:  # the insertion point is the block's output
            stat["channels"] = output.shape[1]
            return
        # In-place and identity activations return their input object, so identity of the
        # objects (not equality of values) tells whether the activation's output is returned.
        stat["last"] = stat["last"] and output is stat["out"]

    handles = [block.register_forward_hook(after_block)]
    if activation is not None:
        handles += [activation.register_forward_pre_hook(before_act),
                    activation.register_forward_hook(after_act)]
    return handles


def _probe_input(model: nn.Module) -> torch.Tensor:
    channels = getattr(model, "in_chans", None)  # timm models keep it
    if not isinstance(channels, int):  # e.g. timm's features_only wrappers: ask the stem
        first_conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
        channels = first_conv.in_channels if first_conv is not None else 3
    reference = next(model.parameters(), None)
    kwargs = {} if reference is None else dict(device=reference.device, dtype=reference.dtype)
    return torch.zeros(1, channels, PROBE_SIZE, PROBE_SIZE, **kwargs)

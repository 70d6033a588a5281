"""What a CP module costs per forward pass, counted from its shapes (for ``tools/complexity.py``).

Operator counters see only part of it: mmengine's tracing counter misses the top-k, the gather
and everything inside the fused pair embedding (a custom autograd function), and torch's
``FlopCounterMode`` counts matrix products and convolutions only. So every step of
:class:`CPModule`'s forward is counted here: multiply-accumulates (MACs, what mmengine and fvcore
call "flops") for the matrix products, and elements for the rest.
"""
from __future__ import annotations

from typing import Dict, Sequence

from ..cp_module import CPModule
from ..knn import whole_clips_per_step


def cp_module_cost(module: CPModule, input_shape: Sequence[int]) -> Dict[str, int]:
    """Per-step cost of one forward of ``module`` on a (N, C, T, H, W) input.

    Returns a dict of counts. Matrix products, in MACs: ``bottleneck`` (its 1x1x1 conv),
    ``search`` (the distance matmul), ``embedding`` (the first layer's per-point halves and
    the later layers on every pair), ``output`` (the projection back to C); ``macs`` is their
    sum. Element operations: ``norm`` (the BN multiply-adds of the bottleneck, the pairs and
    the output), ``resize`` (bilinear resizing back after a shrink, 4 per value as mmengine
    counts it), ``topk`` (scores read by the selection, the own frame's too when whole clips
    are scored), ``gather`` (neighbour features copied) and ``max`` (pair values compared).
    """
    n, channels, steps, in_height, in_width = input_shape
    if channels != module.in_channels:
        raise ValueError(f"input_shape has {channels} channels, the module {module.in_channels}")
    searched = module.search_channels
    height, width = in_height // module.shrink, in_width // module.shrink
    per_frame = height * width
    points = n * steps * per_frame
    inputs = n * steps * in_height * in_width
    # Whole clips' score matrices (own frames masked) when the search budget holds them,
    # else only the other frames' candidates, frame by frame.
    device = next(module.parameters()).device
    whole_clip = whole_clips_per_step(steps * per_frame, device) > 0
    candidates = (steps if whole_clip else steps - 1) * per_frame
    bottleneck = module.bottleneck is not None
    pairs = module.mlp.cost(n, (steps, height, width), module.k)

    cost = dict(
        bottleneck=inputs * channels * searched if bottleneck else 0,
        # Queries [-2q, 1] against keys [p, |p|^2]: C' + 1 MACs per score.
        search=points * candidates * (searched + 1),
        embedding=pairs["embedding"],
        output=points * module.mlp.channels[-1] * channels,
        norm=(inputs * searched if bottleneck else 0) + pairs["norm"] + points * channels,
        resize=4 * inputs * channels if module.shrink > 1 else 0,
        topk=points * candidates,
        gather=pairs["gather"],
        max=pairs["max"],
    )
    cost["macs"] = sum(cost[key] for key in ("bottleneck", "search", "embedding", "output"))
    return cost

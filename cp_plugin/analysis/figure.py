"""The CPNet paper's Figure 5 for any model holding CP modules: what a CP module proposes and keeps.

Top row: the frames, with arrows from a few query points i0 to their k proposals, red where the
proposal is in A(i0) (it gives the maximum of at least one MLP output channel) and blue where
max pooling discards it. Bottom row: per frame, the L1 change the module makes to the features.
``tools/visualize_proposals.py`` is its command line. Needs matplotlib.
"""
from __future__ import annotations

import os
import os.path as osp
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from ..cp_module import CPModule
from .proposals import Proposals, inspect_proposals

__all__ = ["capture_input", "choose_module", "cp_modules", "visualize_proposals"]

KEPT_COLOUR, DISCARDED_COLOUR, QUERY_COLOUR = "red", "dodgerblue", "yellow"


def cp_modules(model: nn.Module) -> Dict[str, CPModule]:
    return {name: module for name, module in model.named_modules() if isinstance(module, CPModule)}


def choose_module(model: nn.Module, name: Optional[str] = None) -> Tuple[str, CPModule]:
    """The CP module called ``name``, or the last one (the deepest) when no name is given."""
    modules = cp_modules(model)
    if not modules:
        raise ValueError(f"{type(model).__name__} has no CPModule to visualise")
    if name is None:
        return list(modules.items())[-1]
    if name not in modules:
        raise ValueError(f"no CP module named {name!r}; this model's are: {', '.join(modules)}")
    return name, modules[name]


def capture_input(module: nn.Module, run: Callable[[], object]) -> torch.Tensor:
    """The tensor ``module`` receives (its first call) while ``run()`` runs the model."""
    seen: List[torch.Tensor] = []

    def keep_first(_, args):
        if not seen:
            seen.append(args[0])

    handle = module.register_forward_pre_hook(keep_first)
    try:
        with torch.no_grad():
            run()
    finally:
        handle.remove()
    if not seen:
        raise RuntimeError("the model's forward never reached the chosen CP module")
    return seen[0]


def most_changed_points(proposals: Proposals, count: int) -> List[int]:
    """Search-grid points (of clip 0) at whose positions the module changes the features most."""
    steps, height, width = proposals.grid
    change = proposals.change[0]  # (T, H, W) at the input resolution: sample it at grid points
    rows = (torch.arange(height) * change.shape[1]) // height
    cols = (torch.arange(width) * change.shape[2]) // width
    on_grid = change[:, rows][:, :, cols].flatten()
    return on_grid.topk(min(count, on_grid.numel())).indices.tolist()


def visualize_proposals(model: nn.Module, run: Callable[[], object], frames: torch.Tensor,
                        out_file: str, module: Optional[str] = None,
                        queries: Optional[Sequence[Tuple[int, int, int]]] = None,
                        num_queries: int = 3, title: Optional[str] = None) -> dict:
    """Draw the Figure-5-style PNG for one CP module of ``model`` on the first clip of a batch.

    Args:
        model: any model holding CP modules (put in eval mode here).
        run: runs ``model`` on the batch (e.g. ``lambda: model(inputs)``).
        frames: (T_in, H, W, 3 or 1) the first clip's frames for display, values in 0..1.
        out_file: the PNG to write.
        module: the CP module's name in ``model.named_modules()`` (default: the last one).
        queries: (t, h, w) points on the module's search grid; default: the ``num_queries``
            points it changes most.

    Returns:
        dict with the module name, the queries, their proposals (t, h, w) and which are in A(i0).
    """
    model.eval()
    name, cp = choose_module(model, module)
    video = capture_input(cp, run)
    proposals = inspect_proposals(cp, video[:1])
    steps, height, width = proposals.grid
    if queries is None:
        points = most_changed_points(proposals, num_queries)
    else:
        points = []
        for t, h, w in queries:
            if not (0 <= t < steps and 0 <= h < height and 0 <= w < width):
                raise ValueError(f"query {(t, h, w)} is outside the search grid T, H, W = "
                                 f"{proposals.grid} of {name}")
            points.append((t * height + h) * width + w)
    result = dict(module=name, grid=proposals.grid, queries=[proposals.unravel(p) for p in points],
                  proposals=[[proposals.unravel(int(j)) for j in proposals.neighbours[0, p]]
                             for p in points],
                  kept=[proposals.kept[0, p].tolist() for p in points], out_file=out_file)
    _draw(frames, proposals, result, title or f"{name}: k={cp.k}")
    return result


def _draw(frames: torch.Tensor, proposals: Proposals, result: dict, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import ConnectionPatch

    steps, height, width = proposals.grid
    # The module's frame t shows the input frame at the middle of its temporal window.
    shown = [frames[min(len(frames) - 1, (2 * t + 1) * len(frames) // (2 * steps))]
             for t in range(steps)]
    image_h, image_w = frames.shape[1:3]
    fig, axes = plt.subplots(2, steps, figsize=(3 * steps, 6.6), squeeze=False, layout="constrained")
    change = proposals.change[0]
    for t in range(steps):
        image = shown[t].expand(-1, -1, 3) if shown[t].shape[-1] == 1 else shown[t]
        axes[0, t].imshow(image.clamp(0, 1).numpy(), interpolation="nearest")
        axes[0, t].set_title(f"frame {t}")
        axes[1, t].imshow(change[t].numpy(), cmap="inferno", vmin=0, vmax=float(change.max()),
                          interpolation="nearest")
        axes[1, t].set_title(f"feature change, frame {t}")
        for ax in axes[:, t]:
            ax.set_xticks([])
            ax.set_yticks([])

    def pixel(point):  # centre of a grid cell, in image pixels
        t, h, w = point
        return (w + 0.5) * image_w / width - 0.5, (h + 0.5) * image_h / height - 0.5

    for query, targets, kept in zip(result["queries"], result["proposals"], result["kept"]):
        start = pixel(query)
        for target, in_a in zip(targets, kept):
            arrow = ConnectionPatch(start, pixel(target), "data", "data", axesA=axes[0, query[0]],
                                    axesB=axes[0, target[0]], arrowstyle="->", linewidth=1.4,
                                    color=KEPT_COLOUR if in_a else DISCARDED_COLOUR)
            fig.add_artist(arrow)
        axes[0, query[0]].plot(*start, "o", markersize=7, markerfacecolor="none",
                               markeredgecolor=QUERY_COLOUR, markeredgewidth=2)
    fig.suptitle(f"{title}   (yellow: query i0; red: proposal in A(i0); blue: discarded by the max)")
    os.makedirs(osp.dirname(osp.abspath(result["out_file"])), exist_ok=True)
    fig.savefig(result["out_file"], dpi=100)
    plt.close(fig)

"""The CPNet paper's Figure 5 for any model holding CP modules: what a CP module proposes and keeps.

Top row: the frames, with arrows from a few query points i0 to their k proposals, red where the
proposal is in A(i0) (it gives the maximum of at least one MLP output channel) and blue where
max pooling discards it. Bottom row: per frame, the L1 change the module makes to the features.
``tools/visualize_proposals.py`` is its command line. Needs matplotlib.
"""
from __future__ import annotations

import os
import os.path as osp
import warnings
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
    A warning (in the picture and as a ``UserWarning``) says when the module is still the
    identity (its output BN is zero, as a freshly inserted or untrained module's): its proposals
    then come from the backbone's features alone and it changes nothing.
    """
    model.eval()
    name, cp = choose_module(model, module)
    identity = not (cp.out_norm.weight.any() or cp.out_norm.bias.any())
    if identity:
        warnings.warn(f"{name} is still the identity (its output BN's weight and bias are 0: "
                      f"untrained or freshly inserted); load trained weights to see what it "
                      f"has learnt", UserWarning, stacklevel=2)
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
                  kept=[proposals.kept[0, p].tolist() for p in points], out_file=out_file,
                  identity=identity)
    _draw(frames, proposals, result, title or f"CP module {name} (k={cp.k}, search grid "
                                              f"T x H x W = {steps} x {height} x {width})")
    return result


def input_frames(steps: int, num_frames: int) -> List[Tuple[int, int]]:
    """The input frames (first, last) each of a module's ``steps`` frames stands for, when the
    backbone pools ``num_frames`` input frames down to ``steps`` (evenly, as temporal strides do)."""
    return [(t * num_frames // steps, max(t * num_frames // steps, (t + 1) * num_frames // steps - 1))
            for t in range(steps)]


def _draw(frames: torch.Tensor, proposals: Proposals, result: dict, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import ConnectionPatch

    from matplotlib.lines import Line2D

    steps, height, width = proposals.grid
    # The module's frame t stands for a window of input frames when the backbone pools time;
    # the panel shows the window's middle frame and names the window.
    windows = input_frames(steps, len(frames))
    shown = [frames[(first + last + 1) // 2] for first, last in windows]
    image_h, image_w = frames.shape[1:3]
    fig, axes = plt.subplots(2, steps, figsize=(3 * steps + 1.2, 6.8), squeeze=False,
                             layout="constrained")
    change = proposals.change[0]
    for t, (first, last) in enumerate(windows):
        image = shown[t].expand(-1, -1, 3) if shown[t].shape[-1] == 1 else shown[t]
        axes[0, t].imshow(image.clamp(0, 1).numpy(), interpolation="nearest")
        window = f"input frame {first}" if first == last else f"input frames {first}-{last}"
        axes[0, t].set_title(f"module frame {t}\n({window})", fontsize=9)
        changes = axes[1, t].imshow(change[t].numpy(), cmap="inferno", vmin=0,
                                    vmax=max(float(change.max()), 1e-12), interpolation="nearest")
        axes[1, t].set_title(f"feature change, module frame {t}", fontsize=9)
        for ax in axes[:, t]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.colorbar(changes, ax=axes[1, :].tolist(), shrink=0.8,
                 label="L1 norm of the change CP adds")

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
    legend = [Line2D([], [], marker="o", linestyle="none", markerfacecolor="none",
                     markeredgecolor=QUERY_COLOUR, markeredgewidth=2, label="query point i0"),
              Line2D([], [], color=KEPT_COLOUR, marker=">", label="proposal in A(i0) (kept by the max)"),
              Line2D([], [], color=DISCARDED_COLOUR, marker=">", label="proposal discarded by the max")]
    fig.legend(handles=legend, loc="outside lower center", ncols=3, fontsize=8)
    if result["identity"]:
        title += ("\nWARNING: this CP module is still the identity (output BN = 0: untrained or "
                  "just inserted); it changes nothing yet")
    fig.suptitle(title, color="darkred" if result["identity"] else "black")
    os.makedirs(osp.dirname(osp.abspath(result["out_file"])), exist_ok=True)
    fig.savefig(result["out_file"], dpi=100)
    plt.close(fig)

"""Draw what a CP module proposes and keeps, in the style of the CPNet paper's Figure 5.

    python tools/visualize_proposals.py CONFIG CHECKPOINT --toy-index 3 --out proposals.png
    python tools/visualize_proposals.py CONFIG CHECKPOINT --video clip.mp4 [--module NAME]
    python tools/visualize_proposals.py --timm-model cpnet_resnet18 [--checkpoint F] --video clip.mp4

Top row: the frames, with arrows from a few query points i0 to their k proposals, red where the
proposal is in A(i0) (it gives the maximum of at least one MLP output channel) and blue where
max pooling discards it. Bottom row: per frame, the L1 change the module makes to the features.
Queries are given as ``--query T H W`` on the module's search grid, or else the points whose
features the module changes most. Also importable: :func:`visualize_proposals`.
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

import cp_plugin.mmaction  # noqa: F401  (first: repairs the mmaction2 install, registers our modules)
from cp_plugin import CPModule
from cp_plugin.analysis.proposals import Proposals, inspect_proposals

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


# -- inputs ---------------------------------------------------------------------------------

def load_mmaction_model(config, checkpoint: Optional[str]) -> Tuple[nn.Module, object]:
    """(model, cfg) built from an mmaction2 config, with the checkpoint's weights if given."""
    from cp_plugin.mmaction.deploy import load_recognizer

    model = load_recognizer(config, checkpoint)
    return model, model.cfg


def load_timm_model(name: str, checkpoint: Optional[str] = None,
                    num_classes: Optional[int] = None) -> nn.Module:
    """A timm model (``cpnet_*`` names included) in eval mode, with a checkpoint's weights."""
    import timm
    import timm_adapters  # noqa: F401  (registers the cpnet_* names)

    if checkpoint and not osp.isfile(checkpoint):
        raise FileNotFoundError(f"checkpoint {checkpoint!r} does not exist")
    kwargs = {} if num_classes is None else dict(num_classes=num_classes)
    return timm.create_model(name, checkpoint_path=checkpoint or "", **kwargs).eval()


def mmaction_sample(model: nn.Module, cfg, video: Optional[str] = None,
                    toy_index: Optional[int] = None) -> Tuple[Callable[[], object], torch.Tensor]:
    """(run, frames) for one sample: a video file through the config's test pipeline, or a
    sample of the config's (toy) validation set."""
    from mmaction.registry import DATASETS
    from mmengine.dataset import Compose

    if (video is None) == (toy_index is None):
        raise ValueError("give exactly one of video (a file) and toy_index (a dataset sample)")
    if video is not None:
        if not osp.isfile(video):
            raise FileNotFoundError(f"video {video!r} does not exist")
        pipeline = Compose(cfg.test_dataloader.dataset.pipeline)
        sample = pipeline(dict(filename=video, label=-1, start_index=0, modality="RGB"))
    else:
        sample = DATASETS.build(cfg.val_dataloader.dataset)[toy_index]
    inputs = sample["inputs"]
    if inputs.dim() == 5:  # (views, C, T, H, W): the first view is enough to draw
        inputs = inputs[:1]
        frames = inputs[0].permute(1, 2, 3, 0)
    else:  # (views * T, C, H, W) for 2D recognizers: every view, the first clip drawn
        frames = inputs.permute(0, 2, 3, 1)
    batch = model.data_preprocessor(dict(inputs=[inputs], data_samples=[sample["data_samples"]]),
                                    False)
    return (lambda: model(batch["inputs"], batch["data_samples"], mode="tensor"),
            frames.float() / 255)


def timm_sample(model: nn.Module, video: str, num_frames: int = 8
                ) -> Tuple[Callable[[], object], torch.Tensor]:
    """(run, frames): ``num_frames`` frames spread over a video file, resized and normalised by
    the model's timm data config."""
    import decord
    import torch.nn.functional as F
    from timm.data import resolve_model_data_config

    if not osp.isfile(video):
        raise FileNotFoundError(f"video {video!r} does not exist")
    reader = decord.VideoReader(video)
    indices = torch.linspace(0, len(reader) - 1, num_frames).round().long().tolist()
    frames = torch.from_numpy(reader.get_batch(indices).asnumpy()).float() / 255  # (T, H, W, 3)
    data_cfg = resolve_model_data_config(model)
    size = data_cfg["input_size"][1:]
    clip = F.interpolate(frames.permute(0, 3, 1, 2), size=size, mode="bilinear", align_corners=False)
    mean = torch.tensor(data_cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(data_cfg["std"]).view(1, 3, 1, 1)
    shown = clip.permute(0, 2, 3, 1)  # the resized frames, (T, H, W, 3) in 0..1
    clip = ((clip - mean) / std).permute(1, 0, 2, 3)[None]  # (1, 3, T, H, W)
    return lambda: model(clip), shown


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", help="mmaction2 config (or use --timm-model)")
    parser.add_argument("checkpoint", nargs="?", help="checkpoint of that config")
    parser.add_argument("--timm-model", help="a timm CPNet name, e.g. cpnet_resnet18")
    parser.add_argument("--timm-checkpoint", help="weights for --timm-model")
    parser.add_argument("--video", help="a video file")
    parser.add_argument("--toy-index", type=int, help="a sample of the config's validation set")
    parser.add_argument("--num-frames", type=int, default=8, help="frames for --timm-model")
    parser.add_argument("--module", help="the CP module's name (default: the last one)")
    parser.add_argument("--query", nargs=3, type=int, action="append", metavar=("T", "H", "W"),
                        help="a query point on the module's search grid (repeatable)")
    parser.add_argument("--num-queries", type=int, default=3)
    parser.add_argument("--out", default=osp.join("work_dirs", "proposals.png"))
    args = parser.parse_args(argv)

    if args.timm_model:
        if args.video is None:
            parser.error("--timm-model needs --video")
        model = load_timm_model(args.timm_model, args.timm_checkpoint)
        run, frames = timm_sample(model, args.video, args.num_frames)
    else:
        if args.config is None:
            parser.error("give an mmaction2 config (and checkpoint), or --timm-model")
        model, cfg = load_mmaction_model(args.config, args.checkpoint)
        run, frames = mmaction_sample(model, cfg, args.video, args.toy_index)
    result = visualize_proposals(model, run, frames, args.out, args.module, args.query,
                                 args.num_queries)
    for query, targets, kept in zip(result["queries"], result["proposals"], result["kept"]):
        marks = ", ".join(f"{p}{'*' if k else ''}" for p, k in zip(targets, kept))
        print(f"{result['module']} query {query}: proposals {marks}  (* in A(i0))")
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()

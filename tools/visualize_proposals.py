"""Draw what a CP module proposes and keeps, in the style of the CPNet paper's Figure 5.

    python tools/visualize_proposals.py CONFIG CHECKPOINT --toy-index 3 --out proposals.png
    python tools/visualize_proposals.py CONFIG CHECKPOINT --video clip.mp4 [--module NAME]
    python tools/visualize_proposals.py --timm-model cpnet_resnet18 [--checkpoint F] --video clip.mp4

Top row: the frames, with arrows from a few query points i0 to their k proposals, red where the
proposal is in A(i0) (it gives the maximum of at least one MLP output channel) and blue where
max pooling discards it. Bottom row: per frame, the L1 change the module makes to the features.
Queries are given as ``--query T H W`` on the module's search grid, or else the points whose
features the module changes most. The drawing is :func:`cp_plugin.analysis.visualize_proposals`.
"""
from __future__ import annotations

import argparse
import functools
import os.path as osp
import warnings

from cp_plugin.analysis import visualize_proposals


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
    if not (args.checkpoint or args.timm_checkpoint):
        warnings.warn("no checkpoint given: the model keeps its initial weights, so its CP "
                      "modules are the identity and its features untrained", UserWarning)

    if args.timm_model:
        if args.video is None:
            parser.error("--timm-model needs --video")
        from timm_adapters import clip_from_video, load_video_model

        model = load_video_model(args.timm_model, args.timm_checkpoint)
        clip, frames = clip_from_video(model, args.video, args.num_frames)
        run = functools.partial(model, clip)
    else:
        if args.config is None:
            parser.error("give an mmaction2 config (and checkpoint), or --timm-model")
        import cp_plugin.mmaction  # noqa: F401  (repairs the mmaction2 install, registers our modules)
        from cp_plugin.mmaction.deploy import load_recognizer, recognizer_sample

        model = load_recognizer(args.config, args.checkpoint)
        run, frames = recognizer_sample(model, args.video, args.toy_index)
    result = visualize_proposals(model, run, frames, args.out, args.module, args.query,
                                 args.num_queries)
    for query, targets, kept in zip(result["queries"], result["proposals"], result["kept"]):
        marks = ", ".join(f"{p}{'*' if k else ''}" for p, k in zip(targets, kept))
        print(f"{result['module']} query {query}: proposals {marks}  (* in A(i0))")
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()

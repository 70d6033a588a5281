"""Classify one video: the top-5 classes and their scores, and optionally what CP proposes.

    python tools/infer.py CONFIG CHECKPOINT VIDEO [--label-file labels.txt] [--proposals p.png]
    python tools/infer.py --timm-model cpnet_resnet18 --timm-checkpoint F VIDEO --label-file L

With a config, the video goes through mmaction2's own inference API (``init_recognizer`` and
``inference_recognizer``: the config's test pipeline, every test view, the head's averaging).
With ``--timm-model``, ``--num-frames`` frames spread over the video are resized and normalised
by the model's timm data config, and the scores are the softmax of its logits. Class names come
from ``--label-file`` (one per line, in class order), else from the test dataset's metainfo
``classes``, else they are class indices. ``--proposals`` writes the Figure-5 picture of the
last CP module for this video (see tools/visualize_proposals.py). The work is the library's:
``cp_plugin.mmaction.deploy`` and ``timm_adapters.deploy``.
"""
from __future__ import annotations

import argparse
import functools
import os.path as osp
from typing import List, Optional, Sequence

import torch

from cp_plugin.analysis import visualize_proposals


def read_labels(path: str) -> List[str]:
    """Class names, one per line, in class order."""
    if not osp.isfile(path):
        raise FileNotFoundError(f"--label-file {path!r} does not exist")
    with open(path) as f:
        names = [line.strip() for line in f if line.strip()]
    if not names:
        raise ValueError(f"--label-file {path!r} holds no class names (one per line)")
    return names


def top_classes(scores: torch.Tensor, names: Optional[Sequence[str]],
                count: int = 5) -> List[tuple]:
    """[(class index, name, score)] of the ``count`` highest scores, highest first."""
    if names is not None and len(names) != scores.numel():
        raise ValueError(f"the model scores {scores.numel()} classes but {len(names)} class "
                         f"names were given; give a label file with one name per class")
    values, indices = scores.topk(min(count, scores.numel()))
    return [(int(i), names[i] if names is not None else f"class {int(i)}", float(v))
            for v, i in zip(values, indices)]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="+", metavar="CONFIG CHECKPOINT VIDEO",
                        help="an mmaction2 config, its checkpoint and a video; or only a video "
                             "with --timm-model")
    parser.add_argument("--timm-model", help="a timm CPNet name, e.g. cpnet_resnet18")
    parser.add_argument("--timm-checkpoint", help="weights for --timm-model")
    parser.add_argument("--num-classes", type=int, help="classes of --timm-model without "
                        "--timm-checkpoint (a checkpoint's own count is read from it)")
    parser.add_argument("--num-frames", type=int, default=8, help="frames for --timm-model")
    parser.add_argument("--label-file", help="class names, one per line")
    parser.add_argument("--top", type=int, default=5, help="how many classes to print")
    parser.add_argument("--proposals", help="write the Figure-5 picture for this video here")
    args = parser.parse_args(argv)
    expected = 1 if args.timm_model else 3
    if len(args.inputs) != expected:
        parser.error("give VIDEO with --timm-model" if args.timm_model else
                     "give CONFIG CHECKPOINT VIDEO (or --timm-model NAME VIDEO)")
    video = args.inputs[-1]
    if not osp.isfile(video):
        raise FileNotFoundError(f"video {video!r} does not exist")
    names = read_labels(args.label_file) if args.label_file else None

    if args.timm_model:
        from timm_adapters import clip_from_video, load_video_model

        model = load_video_model(args.timm_model, args.timm_checkpoint, args.num_classes)
        clip, frames = clip_from_video(model, video, args.num_frames)
        run = functools.partial(model, clip)
        with torch.no_grad():
            scores = run().softmax(-1)[0]
    else:
        import cp_plugin.mmaction  # noqa: F401  (repairs the mmaction2 install, registers our modules)
        from cp_plugin.mmaction.deploy import class_names, load_recognizer, recognize_video

        config, checkpoint = args.inputs[:2]
        model = load_recognizer(config, checkpoint)
        names = names if names is not None else class_names(model)
        scores = recognize_video(model, video)
    top = top_classes(scores, names, args.top)
    width = max(len(name) for _, name, _ in top)
    print(f"{osp.basename(video)}: top {len(top)} of {scores.numel()} classes")
    for rank, (_, name, score) in enumerate(top, start=1):
        print(f"  {rank}. {name:<{width}}  {score:.4f}")
    result = dict(video=video, top=top, scores=scores)

    if args.proposals:
        if not args.timm_model:
            from cp_plugin.mmaction.deploy import recognizer_sample

            run, frames = recognizer_sample(model, video=video)
        result["proposals"] = visualize_proposals(model, run, frames, args.proposals,
                                                  title=f"{osp.basename(video)}: {top[0][1]}")
        print(f"wrote {args.proposals}")
    return result


if __name__ == "__main__":
    main()

"""Export a CPNet to ONNX with a dynamic batch and clip length, and check it in onnxruntime.

    python tools/export_onnx.py CONFIG CHECKPOINT --out cpnet.onnx [--shape 1 3 8 224 224]
    python tools/export_onnx.py --timm-model cpnet_resnet18 [--timm-checkpoint F | --num-classes 400]

The graph takes ``clips`` (N, C, T, H, W), normalised as the model's data preprocessor (mmaction2)
or ``pretrained_cfg`` (timm) says, and gives ``scores`` (N, num_classes) before softmax. N and T
are dynamic by default; ``--dynamic batch frames size`` makes H and W dynamic too. After writing
the file, onnxruntime runs it on random clips at the traced shape and at other N and T, and the
largest difference from PyTorch's eager output is printed (``--no-check`` skips this).
Needs the export extra: ``pip install "cp-plugin[export]"``. Also importable: :func:`main`.
"""
from __future__ import annotations

import argparse
import os
import os.path as osp

import torch
from torch import nn

from cp_plugin.export import DYNAMIC_DIMS, export_onnx, onnx_difference, shapes_to_check


def load_model(args) -> nn.Module:
    """The model to export, in eval mode: an mmaction2 recognizer as clips -> scores, or a timm
    video model."""
    if args.timm_model:
        from timm_adapters import load_video_model

        return load_video_model(args.timm_model, args.timm_checkpoint, args.num_classes)
    import cp_plugin.mmaction  # noqa: F401  (repairs the mmaction2 install, registers our modules)
    from cp_plugin.mmaction.deploy import ClipRecognizer, load_recognizer

    return ClipRecognizer(load_recognizer(args.config, args.checkpoint)).eval()


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", help="mmaction2 config (or use --timm-model)")
    parser.add_argument("checkpoint", nargs="?", help="checkpoint of that config")
    parser.add_argument("--timm-model", help="a timm model name, e.g. cpnet_resnet18")
    parser.add_argument("--timm-checkpoint", help="weights for --timm-model")
    parser.add_argument("--num-classes", type=int, help="classes of --timm-model without "
                        "--timm-checkpoint (a checkpoint's own count is read from it)")
    parser.add_argument("--out", default=osp.join("work_dirs", "cpnet.onnx"))
    parser.add_argument("--shape", nargs=5, type=int, default=[1, 3, 8, 224, 224],
                        metavar=("N", "C", "T", "H", "W"), help="the clips traced")
    parser.add_argument("--dynamic", nargs="*", default=["batch", "frames"],
                        choices=DYNAMIC_DIMS, help="dims left symbolic in the graph")
    parser.add_argument("--min-size", type=int, default=64,
                        help="smallest H, W with --dynamic size")
    parser.add_argument("--min-frames", type=int, default=2,
                        help="smallest T (torch.export names it when 2 is too few)")
    parser.add_argument("--no-check", action="store_true", help="do not run onnxruntime")
    args = parser.parse_args(argv)
    if not args.timm_model and args.config is None:
        parser.error("give an mmaction2 config (and checkpoint), or --timm-model")

    model = load_model(args)
    example = torch.randn(*args.shape, generator=torch.Generator().manual_seed(0))
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    export_onnx(model, example, args.out, args.dynamic, args.min_size, args.min_frames)
    print(f"wrote {args.out} (dynamic: {', '.join(args.dynamic) or 'none'})")
    result = dict(out=args.out, dynamic=list(args.dynamic))
    if not args.no_check:
        shapes = shapes_to_check(args.shape, args.dynamic)
        gen = torch.Generator().manual_seed(1)
        difference = onnx_difference(args.out, model, [torch.randn(*s, generator=gen)
                                                       for s in shapes])
        print(f"onnxruntime vs eager PyTorch on clips {', '.join(map(str, shapes))}: "
              f"largest difference {difference:.2e}")
        result.update(shapes=shapes, difference=difference)
    return result


if __name__ == "__main__":
    main()

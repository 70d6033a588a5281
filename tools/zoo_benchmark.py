"""Put CPNet beside mmaction2's model zoo: parameters, GFLOPs, speed, memory and accuracy per model.

    python tools/zoo_benchmark.py MODEL [MODEL ...] [--with-cp PRESET | --with-cp neck]
        [--frames T] [--size S] [--batch 1] [--train-batch 2] [--repeats 3] [--device cpu]
        [--eval --ann-file FILE --data-prefix DIR --checkpoints FILE ...] [--out-dir DIR]

MODEL is a zoo config (``mmaction::recognition/tsm/tsm_...py``, shipped in the mmaction2 wheel with
its ``metafile.yml``), or a path to a config of ours (``mmaction_configs/kinetics400/...``).
``--with-cp PRESET`` adds a CP twin of each zoo model, made by the config edit a user writes:
``CPBackbone`` with that placement preset (``resnet50``...), or ``neck`` for a ``CPNeck``.

Per model: parameters; GMACs of one test view (the test pipeline's frames and crop, or
``--frames``/``--size``), counted for every row by torch's ``FlopCounterMode`` on an eager forward
(matrix products and convolutions, CP's neighbour search included; multiply-adds, the unit of
the metafiles' "FLOPs", which mmengine's tracing counter gives and which cannot trace our
models); inference clips/s and peak memory at ``--batch`` views; one training step's time at
``--train-batch``; the published top-1/top-5 (the metafile for zoo models, the CPNet paper's
tables for our configs); with ``--eval``, top-1/top-5 measured by mmaction2's test loop on your
data and checkpoints. Writes ``zoo.md``, ``zoo.csv`` and ``zoo.png`` (accuracy against GMACs,
marker area by parameters) to ``--out-dir``. The work is :mod:`cp_plugin.mmaction.zoo`'s.
"""
from __future__ import annotations

import argparse
import dataclasses
from typing import List

import torch

import cp_plugin.mmaction  # noqa: F401  (first: repairs the mmaction2 install, registers our modules)
from cp_plugin.mmaction.zoo import ZooSettings, benchmark, markdown, write_outputs
from cp_plugin.presets import CP_PRESETS


def main(argv=None) -> List[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="zoo config names (mmaction::...) or files")
    parser.add_argument("--with-cp", metavar="PRESET", help="add a CP twin of each zoo model: "
                        "a CPBackbone placement preset (resnet50, resnet18...) or 'neck'")
    parser.add_argument("--frames", type=int, help="frames per view (default: the config's)")
    parser.add_argument("--size", type=int, help="frame side in pixels (default: the config's crop)")
    parser.add_argument("--batch", type=int, default=1, help="views per inference call")
    parser.add_argument("--train-batch", type=int, default=2, help="clips per training step")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs (median)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--eval", action="store_true", help="measure accuracy on your data")
    parser.add_argument("--ann-file", help="--eval: the annotation file of your test set")
    parser.add_argument("--data-prefix", help="--eval: the folder of your videos or frames")
    parser.add_argument("--checkpoints", nargs="+", help="--eval: one local checkpoint per model")
    parser.add_argument("--out-dir", default=ZooSettings.out_dir)
    args = parser.parse_args(argv)
    if args.eval and not (args.ann_file and args.data_prefix and args.checkpoints):
        parser.error("--eval needs --ann-file, --data-prefix and --checkpoints (one per model)")
    if args.checkpoints and len(args.checkpoints) != len(args.models):
        parser.error(f"--checkpoints: got {len(args.checkpoints)} files for {len(args.models)} "
                     f"models; pass one per model, in the same order")
    if args.with_cp:
        valid = set(CP_PRESETS) | {"neck"}
        if args.with_cp not in valid:
            parser.error(f"--with-cp {args.with_cp!r}: use one of {', '.join(sorted(valid))}")
    settings = ZooSettings(**{field.name: getattr(args, field.name)
                              for field in dataclasses.fields(ZooSettings)})
    rows = benchmark(args.models, settings)
    print(markdown(rows))
    for kind, path in write_outputs(rows, args.out_dir).items():
        print(f"wrote {path}")
    return rows


if __name__ == "__main__":
    main()

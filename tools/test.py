"""Test a checkpoint (with ``WeightsOnlyRunner`` unless the config names a runner); the flags are
those of mmaction2's tools/test.py.

    python tools/test.py CONFIG CHECKPOINT [--dump results.pkl]
"""
import argparse
import os
import os.path as osp

import cp_plugin.mmaction  # noqa: F401  (first: repairs the mmaction2 install, registers our modules)
from mmengine.config import Config, DictAction

from cp_plugin.mmaction import build_runner, use_cpu_distributed


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Test (and evaluate) an action recognizer")
    parser.add_argument("config", help="test config file path")
    parser.add_argument("checkpoint", help="checkpoint file")
    parser.add_argument("--work-dir", help="where the evaluation metrics go")
    parser.add_argument("--dump", help="dump the predictions to this .pkl/.pickle file")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction,
                        help="override config entries, key=value")
    parser.add_argument("--show-dir", help="draw predictions on the videos into this folder")
    parser.add_argument("--show", action="store_true", help="show predictions in a window")
    parser.add_argument("--interval", type=int, default=1, help="visualise every n-th sample")
    parser.add_argument("--wait-time", type=float, default=2, help="seconds per shown sample")
    parser.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault("LOCAL_RANK", str(args.local_rank))
    return args


def merge_args(cfg: Config, args) -> Config:
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get("work_dir") is None:
        cfg.work_dir = osp.join("work_dirs", osp.splitext(osp.basename(args.config))[0])
    if args.dump is not None:
        if not args.dump.endswith((".pkl", ".pickle")):
            raise ValueError(f"--dump must name a .pkl or .pickle file, got {args.dump!r}")
        dump = dict(type="DumpResults", out_file_path=args.dump)
        evaluators = cfg.test_evaluator if isinstance(cfg.test_evaluator, list) else [cfg.test_evaluator]
        cfg.test_evaluator = [*evaluators, dump]
    if args.show or args.show_dir:
        cfg.default_hooks.visualization = dict(
            type="VisualizationHook", enable=True, show=args.show, out_dir=args.show_dir,
            interval=args.interval, wait_time=args.wait_time)
    cfg.load_from = args.checkpoint
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    return cfg


def main(argv=None):
    args = parse_args(argv)
    for name, path in (("config", args.config), ("checkpoint", args.checkpoint)):
        if not osp.isfile(path):
            raise FileNotFoundError(f"{name} {path!r} does not exist")
    cfg = merge_args(Config.fromfile(args.config), args)
    use_cpu_distributed(cfg)
    runner = build_runner(cfg)
    return runner.test()


if __name__ == "__main__":
    main()

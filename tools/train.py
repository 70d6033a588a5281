"""Train an mmaction2 config (with ``WeightsOnlyRunner`` unless it names a runner); the flags are
those of mmaction2's tools/train.py.

    python tools/train.py mmaction_configs/kinetics400/cpnet_r18_8x12_kinetics400.py [--resume]
"""
import argparse
import os
import os.path as osp

import cp_plugin.mmaction  # noqa: F401  (first: repairs the mmaction2 install, registers our modules)
from mmengine.config import Config, DictAction

from cp_plugin.mmaction import build_runner, use_cpu_distributed


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Train an action recognizer")
    parser.add_argument("config", help="train config file path")
    parser.add_argument("--work-dir", help="where logs and checkpoints go "
                        "(default: work_dirs/<config name>)")
    parser.add_argument("--resume", nargs="?", type=str, const="auto",
                        help="resume from this checkpoint, or without a path from the latest "
                        "checkpoint in the work dir")
    parser.add_argument("--amp", action="store_true", help="automatic mixed precision")
    parser.add_argument("--no-validate", action="store_true", help="skip validation")
    parser.add_argument("--auto-scale-lr", action="store_true",
                        help="scale the lr by the actual over the base batch size")
    parser.add_argument("--seed", type=int, default=None, help="random seed")
    parser.add_argument("--diff-rank-seed", action="store_true",
                        help="a different seed on every rank")
    parser.add_argument("--deterministic", action="store_true",
                        help="deterministic algorithms (slower)")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction,
                        help="override config entries, key=value (e.g. train_cfg.max_epochs=1)")
    parser.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault("LOCAL_RANK", str(args.local_rank))
    return args


def merge_args(cfg: Config, args) -> Config:
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get("work_dir") is None:
        cfg.work_dir = osp.join("work_dirs", osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        wrapper = cfg.optim_wrapper.get("type", "OptimWrapper")
        if wrapper not in ("OptimWrapper", "AmpOptimWrapper", "MixedPrecisionOptimWrapper"):
            raise ValueError(f"--amp needs optim_wrapper.type OptimWrapper, got {wrapper}")
        # AmpOptimWrapper itself where it runs; on the CPU its bfloat16 variant.
        cfg.optim_wrapper.type = "MixedPrecisionOptimWrapper"
        cfg.optim_wrapper.setdefault("loss_scale", "dynamic")
        hooks = cfg.get("custom_hooks") or []
        if not any(hook.get("type") == "Float32ScoresHook" for hook in hooks):
            cfg.custom_hooks = [*hooks, dict(type="Float32ScoresHook")]
    if args.resume == "auto":
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        if not osp.isfile(args.resume):
            raise FileNotFoundError(f"--resume checkpoint {args.resume!r} does not exist")
        cfg.resume, cfg.load_from = True, args.resume
    if args.auto_scale_lr:
        cfg.auto_scale_lr.enable = True
    if cfg.get("randomness") is None:
        cfg.randomness = dict(seed=args.seed, diff_rank_seed=args.diff_rank_seed,
                              deterministic=args.deterministic)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    return cfg


def main(argv=None):
    args = parse_args(argv)
    if not osp.isfile(args.config):
        raise FileNotFoundError(f"config {args.config!r} does not exist")
    cfg = merge_args(Config.fromfile(args.config), args)
    use_cpu_distributed(cfg)
    runner = build_runner(cfg)
    runner.train()


if __name__ == "__main__":
    main()

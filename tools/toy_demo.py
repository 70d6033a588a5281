"""`make demo`: the CPNet paper's toy experiment (Table 1), trained and evaluated on the CPU.

Trains the five toy networks of mmaction_configs/toy/ one after another with mmengine's Runner,
evaluates each on the whole training and validation sets, and prints Table 1 beside the paper's
numbers. Writes work_dirs/toy/table1.md and work_dirs/toy/table1.json.
"""
import argparse
import json
import os
import time

import cp_plugin  # noqa: F401  (first: repairs the mmaction2 install, registers our modules)
from mmengine.config import Config
from mmengine.registry import RUNNERS
from mmengine.runner import Runner
from mmengine.runner.loops import TestLoop

CONFIG_DIR = os.path.join(os.path.dirname(__file__), "..", "mmaction_configs", "toy")
# name -> (config, paper train accuracy %, paper validation accuracy %)
TABLE1 = {
    "I3D-NL": ("i3d_nl_toy.py", 27.8, 26.4),
    "ARTNet": ("artnet_toy.py", 26.8, 25.9),
    "TRN": ("trn_toy.py", 27.1, 26.9),
    "CPNet": ("cpnet_toy.py", 97.9, 97.4),
    "C2D": ("c2d_toy.py", None, None),  # our control: the CPNet toy without its CP module
    # Not in the default run: CPNet under mmengine's mixed precision (bfloat16 on the CPU).
    "CPNet-AMP": ("cpnet_toy_amp.py", None, None),
}
DEFAULT_MODELS = ["I3D-NL", "ARTNet", "TRN", "CPNet", "C2D"]


def accuracy_on(runner: Runner, dataloader: dict) -> float:
    """Top-1 accuracy of the runner's current model on a whole dataset, in eval mode."""
    return TestLoop(runner, dataloader, runner.cfg.test_evaluator).run()["acc/top1"]


def set_padding_mode(node, mode: str) -> None:
    """Change the padding of every convolution layer config below ``node``."""
    if isinstance(node, dict):
        if "padding_mode" in node:
            node["padding_mode"] = mode
        for value in node.values():
            set_padding_mode(value, mode)
    elif isinstance(node, list):
        for value in node:
            set_padding_mode(value, mode)


def train_and_evaluate(name: str, work_dir: str, seed: int, max_epochs=None,
                       padding_mode=None, steps=None) -> dict:
    cfg = Config.fromfile(os.path.join(CONFIG_DIR, TABLE1[name][0]))
    cfg.work_dir = os.path.join(work_dir, name)
    cfg.randomness = dict(seed=seed)
    if max_epochs is not None:
        cfg.train_cfg.max_epochs = max_epochs
    if padding_mode is not None:
        set_padding_mode(cfg.model, padding_mode)
    if steps is not None:
        for loader in (cfg.train_dataloader, cfg.val_dataloader):
            loader.dataset.generator_cfg = dict(min_step=steps[0], max_step=steps[1])
    runner = RUNNERS.build(cfg)
    start = time.perf_counter()
    runner.train()
    seconds = time.perf_counter() - start
    train_set = dict(cfg.val_dataloader, dataset=dict(cfg.train_dataloader.dataset, test_mode=True))
    return dict(train_acc=accuracy_on(runner, train_set),
                val_acc=accuracy_on(runner, cfg.val_dataloader),
                params=sum(p.numel() for p in runner.model.parameters()),
                seconds=round(seconds, 1))


def markdown_table(results: dict) -> str:
    def percent(value):
        return "-" if value is None else f"{value:.1f}"

    lines = ["| model | train acc | val acc | paper train | paper val | params | seconds |",
             "|---|---|---|---|---|---|---|"]
    for name, row in results.items():
        _, paper_train, paper_val = TABLE1[name]
        lines.append(f"| {name} | {100 * row['train_acc']:.1f} | {100 * row['val_acc']:.1f} | "
                     f"{percent(paper_train)} | {percent(paper_val)} | {row['params']:,} | "
                     f"{row['seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", default=os.path.join("work_dirs", "toy"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", nargs="+", choices=list(TABLE1), default=DEFAULT_MODELS)
    parser.add_argument("--max-epochs", type=int, help="override the configs' epoch count")
    parser.add_argument("--padding-mode", choices=["zeros", "circular"],
                        help="override the convolutions' padding (the configs use circular)")
    parser.add_argument("--steps", nargs=2, type=int, metavar=("MIN", "MAX"),
                        help="override the square's per-step motion range (the paper's: 7 9)")
    args = parser.parse_args(argv)

    results = {}
    for name in args.models:
        print(f"==> {name}: training {TABLE1[name][0]}", flush=True)
        results[name] = train_and_evaluate(name, args.work_dir, args.seed, args.max_epochs,
                                           args.padding_mode, args.steps)
        print(f"==> {name}: {results[name]}", flush=True)

    table = markdown_table(results)
    os.makedirs(args.work_dir, exist_ok=True)
    with open(os.path.join(args.work_dir, "table1.md"), "w") as f:
        f.write(table)
    with open(os.path.join(args.work_dir, "table1.json"), "w") as f:
        json.dump(results, f, indent=2)
    print("\nTable 1 (accuracy %, paper beside ours):\n" + table)
    print(f"wrote {os.path.join(args.work_dir, 'table1.md')} and table1.json")
    return results


if __name__ == "__main__":
    main()

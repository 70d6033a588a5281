"""`make bench`: our CP module against its comparison, measured alternately in one process.

Prints a table and writes work_dirs/bench/results.json (row -> {ours, baseline, ratio, unit}).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Callable, Dict

import torch

from cp_plugin import CPModule
from cp_plugin.reference import ReferenceCPModule


def median_seconds_alternating(ours: Callable[[], None], baseline: Callable[[], None],
                               repeats: int, warmup: int = 1) -> tuple:
    """Median wall time of each callable, run alternately so machine noise hits both alike."""
    for _ in range(warmup):
        ours()
        baseline()
    times = {"ours": [], "baseline": []}
    for _ in range(repeats):
        for name, fn in (("ours", ours), ("baseline", baseline)):
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return statistics.median(times["ours"]), statistics.median(times["baseline"])


def cp_vs_reference(channels: int, frames: int, size: int, batch: int, repeats: int) -> Dict:
    torch.manual_seed(0)
    ours = CPModule(channels, k=8)
    baseline = ReferenceCPModule(channels, k=8)
    baseline.load_state_dict(ours.state_dict())
    x = torch.randn(batch, channels, frames, size, size)

    def step(module):
        def run():
            x_grad = x.clone().requires_grad_()
            module(x_grad).sum().backward()
        return run

    t_ours, t_base = median_seconds_alternating(step(ours), step(baseline), repeats)
    return dict(ours=t_ours, baseline=t_base, ratio=t_ours / t_base, unit="s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="work_dirs/bench/results.json")
    args = parser.parse_args()

    rows = {
        # Small shapes for now; the ResNet-18 res3/res4 rows arrive with the performance issue.
        "cp_vs_reference fwd+bwd C=64 4x14x14 N=2":
            cp_vs_reference(64, 4, 14, 2, args.repeats),
        "cp_vs_reference fwd+bwd C=128 8x14x14 N=1":
            cp_vs_reference(128, 8, 14, 1, args.repeats),
    }
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'row':48s} {'ours':>10s} {'baseline':>10s} {'ratio':>7s}")
    for name, row in rows.items():
        print(f"{name:48s} {row['ours']:9.4f}{row['unit']} {row['baseline']:9.4f}{row['unit']} "
              f"{row['ratio']:7.3f}")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(rows, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

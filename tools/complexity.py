"""Parameters and FLOPs of C2D, C2D + Non-local and CPNet with ResNet-18, -34 and -101 backbones,
beside the CPNet paper's parameter counts (Tables 4 and 5).

    python tools/complexity.py [--depths 18 34 101] [--no-flops] [--frames T] [--size S]

The work is :mod:`cp_plugin.mmaction.complexity`'s.
"""
from __future__ import annotations

import argparse
from typing import List

import cp_plugin.mmaction  # noqa: F401  (first: repairs the mmaction2 install, registers our modules)
from cp_plugin.mmaction.complexity import SETTINGS, SIZE, complexity, markdown


def main(argv=None) -> List[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", nargs="+", type=int, choices=sorted(SETTINGS),
                        default=sorted(SETTINGS))
    parser.add_argument("--no-flops", action="store_true", help="parameters only")
    parser.add_argument("--frames", type=int, help="clip length for every model "
                        "(default: the paper's, 24 for ResNet-18/34 and 32 for ResNet-101)")
    parser.add_argument("--size", type=int, default=SIZE, help="frame side in pixels")
    args = parser.parse_args(argv)
    rows = complexity(args.depths, not args.no_flops, args.frames, args.size)
    print(markdown(rows, args.size))
    return rows


if __name__ == "__main__":
    main()

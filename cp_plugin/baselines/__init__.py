"""Baselines of the paper that mmaction2 does not ship as they are needed here.

- :mod:`.artnet`: ARTNet-ResNet18 and its SMART block, in plain PyTorch; :mod:`.mmaction`
  registers them with mmaction2.
- :mod:`.fused_nonlocal`: mmcv's ``NonLocal3d`` with a fused attention forward (needs mmcv, so it
  is imported on its own, not from here).
"""
from .artnet import ARTNetResNet18, SMARTBlock

__all__ = ["ARTNetResNet18", "SMARTBlock"]

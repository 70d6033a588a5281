"""ARTNet in mmaction2: importing this module registers ``ARTNetResNet18`` and ``SMARTBlock``.

The ARTNet configs list it in ``custom_imports`` after :mod:`cp_plugin.mmaction`.
"""
from .. import mmaction as _glue  # noqa: F401  (first: repairs mmaction2's install)

from mmaction.registry import MODELS  # noqa: E402

from .artnet import ARTNetResNet18, SMARTBlock  # noqa: E402

for _module in (ARTNetResNet18, SMARTBlock):
    MODELS.register_module(module=_module)

__all__ = ["ARTNetResNet18", "SMARTBlock"]

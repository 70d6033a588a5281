"""timm side of cp_plugin: CP modules in timm ResNet-family models.

``import timm_adapters`` registers the ``cpnet_resnet18/34/50/101`` model names with timm and,
when mmaction2 is installed, the ``TimmCPBackbone`` backbone with mmaction2.

- :func:`insert_cp` puts CP modules into a timm model's residual blocks (by name or preset);
  :func:`register_block` adds block classes, unsupported blocks raise
  :class:`UnsupportedBlockError`.
- :class:`VideoModel` runs the image model on clips (N, C, T, H, W) (C2D) with timm's model API;
  :class:`VideoFeatures` does the same for ``features_only`` models.
- :func:`create_video_model` does both for any timm model name.
"""
try:
    import timm  # noqa: F401
    import torchvision  # noqa: F401  (timm imports it; a mismatched build fails here first)
except ImportError as error:
    raise ImportError(
        f"timm_adapters needs timm and a torchvision that matches torch ({error}); install them "
        f"with: pip install \"cp-plugin[timm]\"") from error

import cp_plugin  # noqa: F401  (repairs mmaction2's install before anything imports it)

from .blocks import (TimmBlock, UnsupportedBlockError, candidate_blocks, insert_cp, probe_blocks,
                     refuse_block, register_block, supported_blocks)
from .models import (cpnet_resnet18, cpnet_resnet34, cpnet_resnet50, cpnet_resnet101,
                     create_video_model)
from .video import VideoFeatures, VideoModel

__all__ = ["insert_cp", "register_block", "refuse_block", "supported_blocks", "candidate_blocks",
           "probe_blocks", "TimmBlock", "UnsupportedBlockError", "VideoModel",
           "VideoFeatures", "create_video_model", "cpnet_resnet18", "cpnet_resnet34",
           "cpnet_resnet50", "cpnet_resnet101"]

if cp_plugin.compat.mmaction_installed():
    from .mmaction import TimmCPBackbone  # noqa: F401  (registers with mmaction2)

    __all__.append("TimmCPBackbone")

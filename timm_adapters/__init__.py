"""timm side of cp_plugin: CP modules in timm ResNet-family models.

``import timm_adapters`` registers the ``cpnet_resnet18/34/50/101`` model names with timm and
enters timm's residual blocks in cp_plugin's block table (:mod:`.catalogue`); nothing else.
(mmaction2 users get timm models with CP as ``TimmCPBackbone`` from :mod:`cp_plugin.mmaction`.)

- :func:`insert_cp` puts CP modules into a timm model's residual blocks (by name or preset);
  :func:`register_block` (cp_plugin's one block table) adds block classes, unsupported blocks
  raise :class:`UnsupportedBlockError`.
- :class:`VideoModel` runs the image model on clips (N, C, T, H, W) (C2D) with timm's model API;
  :class:`VideoFeatures` does the same for ``features_only`` models.
- :func:`create_video_model` does both for any timm model name.
- :func:`load_video_model` builds one from a checkpoint (its class count read there);
  :func:`clip_from_video` turns a video file into its input.
"""
try:
    import timm  # noqa: F401
    import torchvision  # noqa: F401  (timm imports it; a mismatched build fails here first)
except ImportError as error:
    raise ImportError(
        f"timm_adapters needs timm and a torchvision that matches torch ({error}); install them "
        f"with: pip install \"cp-plugin[timm]\"") from error

from cp_plugin.blocks import (BlockSpec, UnsupportedBlockError, refuse_block, register_block,
                              supported_blocks)

from .deploy import clip_from_video, load_video_model
from .insert import candidate_blocks, insert_cp
from .models import (cpnet_resnet18, cpnet_resnet34, cpnet_resnet50, cpnet_resnet101,
                     create_video_model)
from .probe import probe_blocks
from .video import VideoFeatures, VideoModel

#: The table entry type, under the name this package gave it before the table was shared.
TimmBlock = BlockSpec

__all__ = ["insert_cp", "register_block", "refuse_block", "supported_blocks", "candidate_blocks",
           "probe_blocks", "TimmBlock", "UnsupportedBlockError", "VideoModel",
           "VideoFeatures", "create_video_model", "cpnet_resnet18", "cpnet_resnet34",
           "cpnet_resnet50", "cpnet_resnet101", "load_video_model", "clip_from_video"]

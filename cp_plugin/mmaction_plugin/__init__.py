"""mmaction2 glue: registers cp_plugin's modules in mmaction2's registries.

Imported by ``import cp_plugin`` when mmaction2 is installed, so configs only need
``custom_imports = dict(imports=['cp_plugin'], allow_failed_imports=False)``.
"""
import warnings

with warnings.catch_warnings():
    # mmcv-lite lacks mmcv's compiled ops and warns about one of them on import; no module
    # used here needs them.
    warnings.filterwarnings("ignore", message=".*MultiScaleDeformableAttention.*")
    from mmaction.registry import MODELS
    from mmcv.cnn import NonLocal3d

from ..cp_module import CPModule
from .backbones import CPBackbone, VideoBackbone, block_specs, register_block

MODELS.register_module("CPModule", module=CPModule)
# mmcv registers NonLocal2d only; the C2D + Non-local baseline places NonLocal3d by config.
if "NonLocal3d" not in MODELS.module_dict:
    MODELS.register_module("NonLocal3d", module=NonLocal3d)

__all__ = ["CPBackbone", "VideoBackbone", "block_specs", "register_block"]

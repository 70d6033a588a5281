"""mmaction2 glue: registers cp_plugin's modules in mmaction2's registries.

Registration only adds names to mmaction2's registries; no class or function of mmaction2,
mmengine or torch is changed.

Imported by ``import cp_plugin`` when mmaction2 is installed, so configs only need
``custom_imports = dict(imports=['cp_plugin'], allow_failed_imports=False)``.
"""
from mmaction.registry import MODELS
from mmcv.cnn import NonLocal3d

from ..artnet import ARTNetResNet18, SMARTBlock
from ..cp_module import CPModule
from .amp import Float32ScoresHook, MixedPrecisionOptimWrapper
from .backbones import CPBackbone, VideoBackbone, block_specs, register_block
from .distributed import use_cpu_distributed
from .fused_nonlocal import FusedNonLocal3d
from .hooks import RandomStateHook, RankAgreementHook
from .runner import WeightsOnlyRunner
from .sample_errors import NameReadFailures, SampleLoadError
from .six_crop import SixCrop
from .toy import ConvBNReLU3d, MovingSquareDataset, ToyVideoNet

MODELS.register_module("CPModule", module=CPModule)
MODELS.register_module("SMARTBlock", module=SMARTBlock)
MODELS.register_module("ARTNetResNet18", module=ARTNetResNet18)
# mmcv registers NonLocal2d only; the C2D + Non-local baseline places NonLocal3d by config.
if "NonLocal3d" not in MODELS.module_dict:
    MODELS.register_module("NonLocal3d", module=NonLocal3d)
MODELS.register_module("FusedNonLocal3d", module=FusedNonLocal3d)

__all__ = ["CPBackbone", "VideoBackbone", "FusedNonLocal3d", "MixedPrecisionOptimWrapper",
           "Float32ScoresHook", "RandomStateHook", "RankAgreementHook", "NameReadFailures",
           "SampleLoadError", "SixCrop", "WeightsOnlyRunner",
           "MovingSquareDataset", "ToyVideoNet", "ConvBNReLU3d", "block_specs", "register_block",
           "use_cpu_distributed"]

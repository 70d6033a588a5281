"""mmaction2 glue: every name cp_plugin adds to mmaction2's registries, and nothing else.

Registration only adds names to mmaction2's registries; no class or function of mmaction2,
mmengine or torch is changed. Imported by ``import cp_plugin`` when mmaction2 is installed, so
configs need only ``custom_imports = dict(imports=['cp_plugin'], allow_failed_imports=False)``.

- :mod:`.backbones`: ``VideoBackbone`` and ``CPBackbone`` (modules inside residual blocks).
- :mod:`.neck`: ``CPNeck`` (CP on the feature map a backbone hands its head).
- :mod:`.six_crop`: the authors' test-time crops.
- :mod:`.runtime`: runner, hooks, mixed precision, distributed launch, sample errors.
"""
from mmaction.registry import DATASETS, MODELS
from mmcv.cnn import NonLocal3d

from ..baselines import ARTNetResNet18, SMARTBlock
from ..baselines.fused_nonlocal import FusedNonLocal3d
from ..cp_module import CPModule
from ..toy.mmaction import ConvBNReLU3d, MovingSquareDataset, ToyVideoNet
from .backbones import CPBackbone, VideoBackbone
from .neck import CPNeck
from .runtime import (Float32ScoresHook, MixedPrecisionOptimWrapper, NameReadFailures,
                      RandomStateHook, RankAgreementHook, SampleLoadError, WeightsOnlyRunner,
                      use_cpu_distributed)
from .six_crop import SixCrop

for _module in (CPModule, CPNeck, SMARTBlock, ARTNetResNet18, FusedNonLocal3d, ConvBNReLU3d, ToyVideoNet):
    MODELS.register_module(module=_module)
DATASETS.register_module(module=MovingSquareDataset)
# mmcv registers NonLocal2d only; the C2D + Non-local baseline places NonLocal3d by config.
if "NonLocal3d" not in MODELS.module_dict:
    MODELS.register_module(module=NonLocal3d)

__all__ = ["CPBackbone", "CPNeck", "VideoBackbone", "FusedNonLocal3d", "MixedPrecisionOptimWrapper",
           "Float32ScoresHook", "RandomStateHook", "RankAgreementHook", "NameReadFailures",
           "SampleLoadError", "SixCrop", "WeightsOnlyRunner", "MovingSquareDataset",
           "ToyVideoNet", "ConvBNReLU3d", "use_cpu_distributed"]

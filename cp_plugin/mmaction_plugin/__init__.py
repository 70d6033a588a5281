"""mmaction2 glue: registers cp_plugin's modules in mmaction2's registries.

Imported by ``import cp_plugin`` when mmaction2 is installed, so configs only need
``custom_imports = dict(imports=['cp_plugin'], allow_failed_imports=False)``.
"""
import warnings

# mmcv-lite lacks mmcv's compiled ops, and mmaction2's models warn about one of them when
# imported (lazily, on the first registry lookup); no module used with cp_plugin needs them.
warnings.filterwarnings("ignore", message=".*MultiScaleDeformableAttention.*")

from mmaction.registry import MODELS  # noqa: E402
from mmcv.cnn import NonLocal3d  # noqa: E402

from ..artnet import ARTNetResNet18, SMARTBlock
from ..cp_module import CPModule
from .amp import MixedPrecisionOptimWrapper, score_heads_in_float32
from .backbones import CPBackbone, VideoBackbone, block_specs, register_block
from .distributed import use_cpu_distributed
from .fused_nonlocal import FusedNonLocal3d
from .hooks import RandomStateHook, RankAgreementHook
from .sample_errors import SampleLoadError, name_failing_samples
from .six_crop import SixCrop
from .toy import ConvBNReLU3d, MovingSquareDataset, ToyVideoNet

MODELS.register_module("CPModule", module=CPModule)
MODELS.register_module("SMARTBlock", module=SMARTBlock)
MODELS.register_module("ARTNetResNet18", module=ARTNetResNet18)
# mmcv registers NonLocal2d only; the C2D + Non-local baseline places NonLocal3d by config.
if "NonLocal3d" not in MODELS.module_dict:
    MODELS.register_module("NonLocal3d", module=NonLocal3d)
MODELS.register_module("FusedNonLocal3d", module=FusedNonLocal3d)
name_failing_samples()
score_heads_in_float32()

__all__ = ["CPBackbone", "VideoBackbone", "FusedNonLocal3d", "MixedPrecisionOptimWrapper",
           "RandomStateHook", "RankAgreementHook", "SampleLoadError", "SixCrop",
           "MovingSquareDataset", "ToyVideoNet", "ConvBNReLU3d", "block_specs", "register_block",
           "use_cpu_distributed"]

"""mmaction2 glue: importing this module registers cp_plugin's names with mmaction2.

A config imports it first: ``custom_imports = dict(imports=['cp_plugin.mmaction'],
allow_failed_imports=False)``. Before anything of mmaction2's is imported, :mod:`.compat` puts
in place the modules the mmaction2 1.2.0 install lacks; beyond that, registration only adds
names to mmaction2's registries (no class or function of mmaction2, mmengine or torch changes).

- :mod:`.backbones`: ``VideoBackbone`` and ``CPBackbone`` (modules inside residual blocks).
- :mod:`.neck`: ``CPNeck`` (CP on the feature map a backbone hands its head).
- :mod:`.timm_backbone`: ``TimmCPBackbone`` (a timm model with CP), when timm is installed.
- :mod:`.six_crop`: the authors' test-time crops.
- :mod:`.runtime`: runner, hooks, mixed precision, distributed launch, sample errors.

Registered here too: ``CPModule``, mmcv's ``NonLocal3d`` and ``FusedNonLocal3d`` (modules that
``VideoBackbone`` places). The paper's other baselines and the toy task register their own
names: ``cp_plugin.baselines.mmaction`` (ARTNet), ``cp_plugin.toy.mmaction``.
"""
from .compat import apply as _repair_mmaction_install

_repair_mmaction_install()

import importlib.util  # noqa: E402  (the repairs come before anything imports mmaction2)

try:
    import mmaction  # noqa: E402,F401
except ImportError as error:
    raise ImportError(
        f"cp_plugin.mmaction needs mmaction2, mmengine and mmcv ({error}); install them with: "
        f"pip install \"cp-plugin[mmaction]\"") from error
from mmaction.registry import MODELS  # noqa: E402
from mmcv.cnn import NonLocal3d  # noqa: E402

from ..baselines.fused_nonlocal import FusedNonLocal3d  # noqa: E402
from ..cp_module import CPModule  # noqa: E402
from .backbones import CPBackbone, VideoBackbone  # noqa: E402
from .neck import CPNeck  # noqa: E402
from .runtime import (Float32ScoresHook, MixedPrecisionOptimWrapper, NameReadFailures,  # noqa: E402
                      RandomStateHook, RankAgreementHook, SampleLoadError, WeightsOnlyRunner,
                      build_runner, use_cpu_distributed)
from .six_crop import SixCrop  # noqa: E402

for _module in (CPModule, CPNeck, FusedNonLocal3d):
    MODELS.register_module(module=_module)
# mmcv registers NonLocal2d only; the C2D + Non-local baseline places NonLocal3d by config.
if "NonLocal3d" not in MODELS.module_dict:
    MODELS.register_module(module=NonLocal3d)

__all__ = ["CPBackbone", "CPNeck", "VideoBackbone", "FusedNonLocal3d", "MixedPrecisionOptimWrapper",
           "Float32ScoresHook", "RandomStateHook", "RankAgreementHook", "NameReadFailures",
           "SampleLoadError", "SixCrop", "WeightsOnlyRunner", "build_runner", "use_cpu_distributed"]

if importlib.util.find_spec("timm") is not None:
    from .timm_backbone import TimmCPBackbone  # noqa: E402,F401

    __all__.append("TimmCPBackbone")

"""cp_plugin: the CP (Correspondence Proposal) module of CPNet for PyTorch, mmaction2 and timm.

The core (``CPModule``, ``other_frame_knn``, ``reference``) is pure PyTorch. When mmaction2 and
mmengine are installed, importing this package also repairs their known install problems
(:mod:`cp_plugin.compat`) and registers its modules with mmaction2
(:mod:`cp_plugin.mmaction`).
"""
from . import compat, reference
from .cp_module import CPModule
from .knn import other_frame_knn
from .layout import frames_to_video, video_to_frames

__version__ = "0.1.0"
__all__ = ["CPModule", "other_frame_knn", "frames_to_video", "video_to_frames", "reference", "compat"]

compat.apply()
if compat.mmaction_installed():
    from . import mmaction  # noqa: F401  (registers with mmaction2)

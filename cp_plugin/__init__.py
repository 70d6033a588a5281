"""cp_plugin: the CP (Correspondence Proposal) module of CPNet for PyTorch, mmaction2 and timm.

The core imports only torch: the module (``CPModule``) and its parts (``other_frame_knn``, the
pair embedding, the clip layout), the plain ``reference``, and the one table of residual blocks
modules can go into (``register_block``) with the insertion that uses it. Importing it loads
nothing else and changes nothing: mmaction2 users import :mod:`cp_plugin.mmaction` (in a
config, ``custom_imports = dict(imports=['cp_plugin.mmaction'])``), timm users ``timm_adapters``.
"""
from . import reference
from .blocks import UnsupportedBlockError, refuse_block, register_block
from .cp_module import CPModule
from .knn import other_frame_knn
from .layout import frames_to_video, video_to_frames

__version__ = "0.1.0"
__all__ = ["CPModule", "other_frame_knn", "frames_to_video", "video_to_frames", "reference",
           "register_block", "refuse_block", "UnsupportedBlockError"]

"""Repairs for the mmaction2 1.2.0 / mmengine 0.10.7 stack on current PyTorch.

Applied by :mod:`cp_plugin.mmaction` before it imports anything of mmaction2's (so a config's
``custom_imports=dict(imports=['cp_plugin.mmaction'])`` runs them before mmaction2 builds
anything):
``mmaction.models.localizers.drn`` is missing from the mmaction2 1.2.0 wheel, which breaks
   ``import mmaction.models``. A placeholder module takes its place.
``mmaction.models.multimodal`` (the VindLU models) imports transformers 4's modules, and
   mmaction2 imports it whenever transformers >= 4.28 is installed; beside transformers 5 (as on
   the GPU machines this project benchmarks on) that breaks ``import mmaction.models`` too. An
   empty module takes its place there, so VindLU alone is missing (not registered).

Nothing else changes on import. torch >= 2.6 loads checkpoints with ``weights_only=True``, and
mmengine 0.10.7 checkpoints hold its ``HistoryBuffer`` logging objects with numpy arrays inside:
:func:`mmengine_checkpoint_globals` lists exactly those classes, and
:func:`mmengine_checkpoints_allowed` allows them for the loads inside its ``with`` block only
(``WeightsOnlyRunner`` wraps its checkpoint loads in it). torch's process-wide allow-list is never
touched.
"""
from __future__ import annotations

import builtins
import importlib.metadata
import importlib.util
import os
import sys
import types

_DRN_MODULES = ("mmaction.models.localizers.drn", "mmaction.models.localizers.drn.drn")


def _package_dir(name: str):
    """Directory of an installed top-level package without importing it, or None."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return list(spec.submodule_search_locations)[0]


class _MissingDRN:
    """Placeholder for mmaction2's DRN localizer, which its 1.2.0 wheel does not ship."""

    def __init__(self, *args, **kwargs):
        raise ImportError(
            "mmaction2 1.2.0's wheel lacks mmaction/models/localizers/drn; cp_plugin put a "
            "placeholder there so the rest of mmaction2 imports. Install mmaction2 from source "
            "to use DRN.")


def install_drn_placeholder() -> bool:
    """Put a placeholder DRN module in ``sys.modules`` if mmaction2 lacks it; True if installed."""
    root = _package_dir("mmaction")
    if root is None or _DRN_MODULES[0] in sys.modules:
        return False
    # Look on disk: find_spec('mmaction.models.localizers.drn') would import the broken parent.
    if os.path.exists(os.path.join(root, "models", "localizers", "drn", "__init__.py")):
        return False
    package = types.ModuleType(_DRN_MODULES[0], _MissingDRN.__doc__)
    package.__path__ = []
    module = types.ModuleType(_DRN_MODULES[1], _MissingDRN.__doc__)
    module.DRN = _MissingDRN
    package.drn = module
    sys.modules[_DRN_MODULES[0]] = package
    sys.modules[_DRN_MODULES[1]] = module
    return True


_MULTIMODAL_MODULE = "mmaction.models.multimodal"


def transformers_major_version():
    """The installed transformers' major version (without importing it), or None."""
    try:
        return int(importlib.metadata.version("transformers").split(".")[0])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return None


def install_multimodal_placeholder() -> bool:
    """Put an empty ``mmaction.models.multimodal`` in ``sys.modules`` where mmaction2 1.2.0
    would import its VindLU models against transformers >= 5; True if installed."""
    major = transformers_major_version()
    if (_package_dir("mmaction") is None or _MULTIMODAL_MODULE in sys.modules
            or major is None or major < 5):
        return False
    module = types.ModuleType(_MULTIMODAL_MODULE, "mmaction2 1.2.0's VindLU models need "
                              "transformers 4; cp_plugin left them out beside transformers 5.")
    module.__path__ = []
    sys.modules[_MULTIMODAL_MODULE] = module
    return True


def mmengine_checkpoint_globals() -> list:
    """The non-tensor classes and functions an mmengine 0.10.7 Runner checkpoint pickles."""
    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer

    multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
    numeric_dtypes = (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16,
                      np.uint32, np.uint64, np.float16, np.float32, np.float64)
    return [
        HistoryBuffer,
        # HistoryBuffer keeps its statistics methods in a dict, pickled as getattr(cls, name).
        # The unpickler still refuses to *call* anything that is not allow-listed.
        builtins.getattr,
        np.ndarray, np.dtype, multiarray._reconstruct, multiarray.scalar,
        *(type(np.dtype(t)) for t in numeric_dtypes),
    ]


def mmengine_checkpoints_allowed():
    """Context manager: ``torch.load(weights_only=True)`` reads mmengine checkpoints inside it.

    The allow-list is torch's own ``safe_globals`` context, restored on exit; outside it (and in
    every load of anyone else's) torch refuses these classes as usual.
    """
    import torch

    return torch.serialization.safe_globals(mmengine_checkpoint_globals())


def apply() -> dict:
    """Apply every repair whose package is installed; return which were applied."""
    return {"drn_placeholder": install_drn_placeholder(),
            "multimodal_placeholder": install_multimodal_placeholder()}

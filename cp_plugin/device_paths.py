"""Which of CP's equivalent code paths each kind of device runs: the one place that decides.

CP computes the same result several ways, and which is fastest depends on the device: a CPU
prefers small cache-sized chunks and a Python loop over frames; a GPU prefers a few large
kernels (whole clips' score matrices, whole pair tensors). The finite check on CP's input also
differs: on the CPU it costs nothing and gives a clear error; on an accelerator it would need a
host sync, or a device-side assert that kills the process, where a float16 overflow should
only make GradScaler skip the step, as it does for every other layer.

:func:`get_device_paths` answers per device type, :func:`set_device_paths` changes the answer
(like timm's ``use_fused_attn``/``set_fused_attn``) and :func:`use_device_paths` does so for a
``with`` block: to run a GPU's paths on the CPU in tests and benchmarks, or to turn the finite
check on while debugging a NaN on a GPU. Imports only torch.
"""
from __future__ import annotations

import contextlib
import dataclasses
from typing import Dict, Iterator, Optional, Union

import torch

__all__ = ["DevicePaths", "CPU_PATHS", "ACCELERATOR_PATHS", "get_device_paths",
           "set_device_paths", "use_device_paths"]


@dataclasses.dataclass(frozen=True)
class DevicePaths:
    """CP's choices on one kind of device.

    Attributes:
        whole_clip_search: score whole clips (own frames masked) when their P x P score
            matrices fit ``search_chunk_elements``, instead of looping over frames.
        search_chunk_elements: the most elements of one search score matrix.
        pair_chunk_elements: the most elements of one chunk's pair tensor on the fused path.
        plain_pair_elements: pair tensors (points x k x widest layer) up to this size run as
            plain autograd ops on whole tensors; larger ones (and all, for 0) take the fused,
            chunked path.
        finite_check: raise a ValueError naming the count of NaN/Inf in CP's input. On an
            accelerator this costs a host sync per call: a debugging switch there.

    Examples:
        >>> from cp_plugin.device_paths import ACCELERATOR_PATHS
        >>> ACCELERATOR_PATHS.replace(finite_check=True).finite_check
        True
    """

    whole_clip_search: bool
    search_chunk_elements: int
    pair_chunk_elements: int
    plain_pair_elements: int
    finite_check: bool

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.type == "bool" and not isinstance(value, bool):
                raise TypeError(f"DevicePaths.{field.name} must be a bool, got {value!r}")
            minimum = 0 if field.name == "plain_pair_elements" else 1  # 0: never plain
            if field.type == "int" and (isinstance(value, bool) or not isinstance(value, int)
                                        or value < minimum):
                raise ValueError(f"DevicePaths.{field.name} must be an int >= {minimum}, "
                                 f"got {value!r}")

    def replace(self, **changes) -> "DevicePaths":
        """A copy with ``changes`` (field names as above)."""
        return dataclasses.replace(self, **changes)


#: The CPU: 4 MiB float32 score matrices and 1 MiB pair chunks stay in cache between the op that
#: writes them and the one that reads them; scoring whole clips costs more than the frame loop
#: saves (2 x 392 points, C=256: 5.6 against 3.9 ms; 8 x 1024 points, C=64, T=4: 44 against
#: 22 ms); pair chunks of 2^20 ran up to 12% faster at ResNet-18 res3 but took 20-25 MiB more
#: at res4 (benchmarks/NOTES.md).
CPU_PATHS = DevicePaths(whole_clip_search=False, search_chunk_elements=1 << 20,
                        pair_chunk_elements=1 << 18, plain_pair_elements=0, finite_check=True)
#: Every other device: each chunk costs kernel launches and memory is ample: 256 MiB score
#: matrices (ResNet-18 res3's whole clips, 8 x 28 x 28 points, one at a time), 64 MiB pair
#: chunks, whole pair tensors up to 1 GiB in float32 (a dozen kernels where the fused path
#: takes a hundred), and no finite check (no host sync; non-finite values propagate).
ACCELERATOR_PATHS = DevicePaths(whole_clip_search=True, search_chunk_elements=1 << 26,
                                pair_chunk_elements=1 << 24, plain_pair_elements=1 << 28,
                                finite_check=False)

_chosen: Dict[str, DevicePaths] = {}


def _device_type(device: Union[str, torch.device]) -> str:
    if isinstance(device, torch.device):
        return device.type
    if not isinstance(device, str):
        raise TypeError(f"device must be a torch.device or a device type such as 'cpu' or "
                        f"'cuda', got {type(device).__name__} ({device!r})")
    return torch.device(device).type


def get_device_paths(device: Union[str, torch.device]) -> DevicePaths:
    """The paths CP takes on ``device`` (a torch.device or a type such as ``"cuda"``)."""
    kind = _device_type(device)
    chosen = _chosen.get(kind)
    if chosen is not None:
        return chosen
    return CPU_PATHS if kind == "cpu" else ACCELERATOR_PATHS


def set_device_paths(device: Union[str, torch.device], paths: Optional[DevicePaths]) -> None:
    """Make CP take ``paths`` on every device of ``device``'s type; None restores the default.

    Examples:
        >>> from cp_plugin.device_paths import ACCELERATOR_PATHS, set_device_paths
        >>> set_device_paths("cuda", ACCELERATOR_PATHS.replace(finite_check=True))  # debug NaNs
        >>> set_device_paths("cuda", None)
    """
    kind = _device_type(device)
    if paths is None:
        _chosen.pop(kind, None)
    elif not isinstance(paths, DevicePaths):
        raise TypeError(f"paths must be a DevicePaths (e.g. ACCELERATOR_PATHS.replace(...)) or "
                        f"None, got {type(paths).__name__}")
    else:
        _chosen[kind] = paths


@contextlib.contextmanager
def use_device_paths(device: Union[str, torch.device], paths: DevicePaths) -> Iterator[None]:
    """:func:`set_device_paths` for the ``with`` block, then the previous choice again.

    Examples:
        >>> import torch
        >>> from cp_plugin import CPModule
        >>> from cp_plugin.device_paths import ACCELERATOR_PATHS, use_device_paths
        >>> with use_device_paths("cpu", ACCELERATOR_PATHS):  # a GPU's paths, on the CPU
        ...     y = CPModule(8, k=2)(torch.randn(1, 8, 2, 3, 3))
    """
    kind = _device_type(device)
    before = _chosen.get(kind)
    set_device_paths(kind, paths)
    try:
        yield
    finally:
        set_device_paths(kind, before)

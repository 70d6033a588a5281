"""Argument checks shared by every entry point: the CP module, the neighbour search and the
reference, the clip check (:func:`check_clips`) of every model that takes clips, and the unknown
options of every constructor a config builds (:func:`check_known_options`).

Every error names the argument (or the config key as the user wrote it), the value it got and
what to do instead.
"""
from __future__ import annotations

import difflib
import inspect
from typing import Iterable, List, Optional

import torch

from .device_paths import get_device_paths
from .tracing import exporting


def check_positive_int(name: str, value, minimum: int = 1) -> int:
    # A SymInt is a size while torch.export traces with dynamic shapes: the comparison below
    # then becomes a check on the exported graph's input range.
    if isinstance(value, bool) or not isinstance(value, (int, torch.SymInt)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_num_frames(num_frames: int) -> int:
    check_positive_int("num_frames", num_frames)
    if num_frames < 2:
        raise ValueError(
            f"num_frames (T) must be >= 2: CP looks for correspondences in *other* frames, "
            f"got T={num_frames}. Feed clips of at least 2 frames.")
    return num_frames


def check_k(k: int, num_frames: int, points_per_frame: int) -> int:
    check_positive_int("k", k)
    largest = (num_frames - 1) * points_per_frame
    if k > largest:
        raise ValueError(
            f"k={k} is larger than the number of candidate points in the other frames, "
            f"(T-1)*H*W = ({num_frames}-1)*{points_per_frame} = {largest}; use k <= {largest}.")
    return k


def check_finite(name: str, tensor: torch.Tensor) -> None:
    """Raise a ValueError if ``tensor`` holds a NaN or an Inf, where the device's paths ask for
    the check (:mod:`cp_plugin.device_paths`): on the CPU, where it costs no stall. On an
    accelerator non-finite values propagate, as through every other layer, and GradScaler skips
    the step; ``finite_check=True`` there is a debugging switch that costs a host sync."""
    # Data-dependent check: skipped while torch.compile or torch.export trace, so it causes no
    # graph break and no data-dependent guard.
    if torch.compiler.is_compiling() or exporting():
        return
    if not get_device_paths(tensor.device).finite_check:
        return
    # One reduction first: a NaN or Inf anywhere makes the sum non-finite, so a finite sum
    # clears the tensor at a tenth of the cost of isfinite().all() (four passes). Only a
    # non-finite sum (or a finite tensor whose sum overflowed) takes the element-wise test.
    accumulate = torch.float64 if tensor.dtype == torch.float64 else torch.float32
    if not bool(torch.isfinite(tensor.sum(dtype=accumulate))):
        bad = int((~torch.isfinite(tensor)).sum())
        if bad:
            raise ValueError(_non_finite_message(name, bad))


def _non_finite_message(name: str, count: int) -> str:
    return (f"{name} contains {count} non-finite value(s) (NaN or Inf); CP distances would be "
            f"meaningless. Check the input data and the layers before this module.")


def check_points(points: torch.Tensor, num_frames: int, k: int) -> int:
    """Validate a (N, P, C) frame-major point set; return the points per frame (H*W)."""
    if not isinstance(points, torch.Tensor):
        raise TypeError(f"points must be a torch.Tensor, got {type(points).__name__}")
    if points.dim() != 3:
        raise ValueError(
            f"points must have shape (N, P, C) with P = T*H*W in frame-major order, "
            f"got {points.dim()} dims {tuple(points.shape)}")
    check_num_frames(num_frames)
    num_points = points.shape[1]
    if num_points % num_frames:
        raise ValueError(
            f"points has P={num_points} points, which does not divide into num_frames={num_frames} "
            f"frames; pass the T the points were flattened from.")
    points_per_frame = num_points // num_frames
    check_k(k, num_frames, points_per_frame)
    check_finite("points", points)
    return points_per_frame


def unknown_name_message(where: str, name, valid: Iterable, what: str = "option",
                         listed: Optional[str] = None) -> str:
    """``where: unknown <what> 'name' (did you mean 'closest'?); valid <what>s: ...``, where
    ``where`` is the config key or argument as the user wrote it; ``listed`` replaces the list
    of valid names where it would be too long to read."""
    valid = [str(v) for v in valid]
    closest = difflib.get_close_matches(str(name), valid, n=1, cutoff=0.6)
    hint = f" (did you mean {closest[0]!r}?)" if closest else ""
    return f"{where}: unknown {what} {name!r}{hint}; valid {what}s: {listed or ', '.join(valid)}"


def argument_names(cls: type) -> List[str]:
    """The named arguments of ``cls``'s constructor (no ``self``, ``*args`` or ``**kwargs``)."""
    return [p.name for p in inspect.signature(cls.__init__).parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def takes_any_keyword(cls: type) -> bool:
    """Whether ``cls``'s constructor passes unknown keywords on (``**kwargs``)."""
    return any(p.kind == p.VAR_KEYWORD for p in inspect.signature(cls.__init__).parameters.values())


def check_known_options(where: str, given: Iterable, valid: Iterable) -> None:
    """Raise a TypeError (as Python does for an unknown keyword) for the first name in
    ``given`` that ``valid`` lacks, in the user's terms (see :func:`unknown_name_message`)."""
    valid = list(valid)
    for name in given:
        if name not in valid:
            raise TypeError(unknown_name_message(where, name, valid))


def input_channels(model: torch.nn.Module) -> Optional[int]:
    """The channels ``model``'s first convolution takes (its input's C), or None."""
    for module in model.modules():
        if isinstance(module, torch.nn.modules.conv._ConvNd):
            return module.in_channels
    return None


def check_clips(x, name: str, owner: str, channels: Optional[int] = None,
                channels_fix: str = "") -> torch.Tensor:
    """Raise unless ``x`` is a batch of clips (N, C, T, H, W) with ``channels`` channels (when
    given). Clips in (N, T, C, H, W) order are recognised and answered with the permute that
    fixes them. ``owner`` (what the user called) and ``name`` (its argument) start the error."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{owner}: {name} must be a torch.Tensor of clips (N, C, T, H, W), got "
                        f"{type(x).__name__}")
    shape = tuple(x.shape)
    if x.dim() != 5:
        raise ValueError(
            f"{owner}: {name} must be clips (N, C, T, H, W), got {x.dim()} dims {shape}; add a "
            f"batch dim for one clip, or use cp_plugin.frames_to_video(frames, T) on "
            f"(N*T, C, H, W) frames")
    if channels is not None and shape[1] != channels:
        if shape[2] == channels:
            raise ValueError(
                f"{owner}: {name} of shape {shape} looks like clips in (N, T, C, H, W) order; "
                f"{owner} takes (N, C, T, H, W): pass {name}.permute(0, 2, 1, 3, 4)")
        raise ValueError(f"{owner}: {name} of shape {shape} has {shape[1]} channels (dim 1), "
                         f"{owner} takes {channels}" + (f"; {channels_fix}" if channels_fix else ""))
    return x

"""Video layouts: clips (N, C, T, H, W) and clip-major batches of frames (N*T, C, H, W) for 2D
backbones, the split of one into the other, and the points' coordinates.

Every conversion and every "does not divide into clips" error of the package comes from here.
"""
from __future__ import annotations

from typing import Optional

import torch

from .validation import check_positive_int

#: Coordinates per point: (t/T, h/H, w/W).
COORDINATE_DIMS = 3


def video_to_frames(video: torch.Tensor) -> torch.Tensor:
    """(N, C, T, H, W) -> (N*T, C, H, W), clip-major (frame t of clip n at row n*T + t)."""
    if video.dim() != 5:
        raise ValueError(f"video must be (N, C, T, H, W), got {video.dim()} dims {tuple(video.shape)}")
    return video.transpose(1, 2).flatten(0, 1)


def frames_to_video(frames: torch.Tensor, num_frames: Optional[int] = None, *,
                    num_clips: Optional[int] = None) -> torch.Tensor:
    """(N*T, C, H, W) clip-major -> (N, C, T, H, W), a view; inverse of :func:`video_to_frames`.

    Give the frames per clip (``num_frames``) or the clips in the batch (``num_clips``).
    """
    if frames.dim() != 4:
        raise ValueError(f"frames must be (N*T, C, H, W), got {frames.dim()} dims {tuple(frames.shape)}")
    num_frames = frames_per_clip(frames.shape[0], num_clips=num_clips, num_frames=num_frames)
    return frames.unflatten(0, (-1, num_frames)).transpose(1, 2)


def frames_per_clip(batch: int, num_clips: Optional[int] = None, num_frames: Optional[int] = None,
                    num_clips_name: str = "num_clips", num_frames_name: str = "num_frames") -> int:
    """Frames per clip (T) of a clip-major batch of ``batch`` frames, from either count or both.

    The ``*_name`` arguments are the names the caller's user knows these counts by (a config
    key such as ``test_num_segments``), so that the error says what to set.
    """
    if num_clips is None and num_frames is None:
        raise ValueError(f"a batch of {batch} frames needs {num_clips_name} or {num_frames_name} "
                         f"to be split into clips")
    if num_clips is not None:
        check_positive_int(num_clips_name, num_clips)
        if batch % num_clips:
            raise ValueError(
                f"a batch of {batch} frames does not divide into {num_clips_name}={num_clips} "
                f"clips; set {num_clips_name} to the count the batch was flattened with.")
        if num_frames is not None and num_clips * num_frames != batch:
            raise ValueError(
                f"{num_clips_name}={num_clips} x {num_frames_name}={num_frames} != batch size "
                f"{batch}; give only one of them or make them agree.")
        return batch // num_clips
    check_positive_int(num_frames_name, num_frames)
    if batch % num_frames:
        raise ValueError(
            f"a batch of {batch} frames does not divide into clips of {num_frames_name}="
            f"{num_frames}; set {num_frames_name} to the T the batch was flattened from.")
    return num_frames


def frame_coordinates(num_frames: int, height: int, width: int, *,
                      device=None, dtype=None) -> torch.Tensor:
    """(T*H*W, 3) normalised coordinates (t/T, h/H, w/W) in frame-major order."""
    grids = torch.meshgrid(
        torch.arange(num_frames, device=device, dtype=dtype) / num_frames,
        torch.arange(height, device=device, dtype=dtype) / height,
        torch.arange(width, device=device, dtype=dtype) / width,
        indexing="ij")
    return torch.stack(grids, dim=-1).reshape(-1, COORDINATE_DIMS)

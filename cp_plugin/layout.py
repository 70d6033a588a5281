"""Conversions between video tensors and clip-major batches of frames for 2D backbones."""
from __future__ import annotations

from typing import Optional

import torch

from .validation import check_positive_int


def video_to_frames(video: torch.Tensor) -> torch.Tensor:
    """(N, C, T, H, W) -> (N*T, C, H, W), clip-major (frame t of clip n at row n*T + t)."""
    if video.dim() != 5:
        raise ValueError(f"video must be (N, C, T, H, W), got {video.dim()} dims {tuple(video.shape)}")
    return video.transpose(1, 2).flatten(0, 1)


def frames_to_video(frames: torch.Tensor, num_frames: int) -> torch.Tensor:
    """(N*T, C, H, W) clip-major -> (N, C, T, H, W), a view; inverse of :func:`video_to_frames`."""
    if frames.dim() != 4:
        raise ValueError(f"frames must be (N*T, C, H, W), got {frames.dim()} dims {tuple(frames.shape)}")
    split_frames(frames.shape[0], num_frames=num_frames)
    return frames.unflatten(0, (-1, num_frames)).transpose(1, 2)


def split_frames(batch: int, num_clips: Optional[int] = None, num_frames: Optional[int] = None,
                 num_clips_name: str = "num_clips", num_frames_name: str = "num_frames") -> int:
    """Frames per clip of a clip-major batch of ``batch`` frames, from either count.

    The ``*_name`` arguments are the names the caller's user knows these counts by (a config
    key such as ``test_num_segments``), so that the error says what to set.
    """
    if (num_clips is None) == (num_frames is None):
        raise ValueError(f"pass exactly one of {num_clips_name} and {num_frames_name}, got "
                         f"{num_clips_name}={num_clips}, {num_frames_name}={num_frames}")
    count, name = (num_clips, num_clips_name) if num_frames is None else (num_frames, num_frames_name)
    check_positive_int(name, count)
    if batch % count:
        what = "clips" if num_frames is None else "clips of"
        raise ValueError(
            f"a batch of {batch} frames does not divide into {what} {name}={count}; set "
            f"{name} to the count the batch was flattened with.")
    return batch // count if num_frames is None else num_frames

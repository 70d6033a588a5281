"""Conversions between video tensors and clip-major batches of frames for 2D backbones."""
from __future__ import annotations

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
    check_positive_int("num_frames", num_frames)
    if frames.shape[0] % num_frames:
        raise ValueError(
            f"a batch of {frames.shape[0]} frames does not divide into clips of "
            f"num_frames={num_frames}; pass the T the batch was flattened from.")
    return frames.unflatten(0, (-1, num_frames)).transpose(1, 2)

"""The CPNet paper's toy data (Section 4, Table 1): a small white square moving far between frames.

Each video is ``num_frames`` frames of a ``square`` x ``square`` white square on a black
``size`` x ``size`` canvas, moving left, right, up or down by a random ``min_step``..``max_step``
pixels per step (drawn anew for every step), always fully inside the canvas. Labels are balanced
and everything follows from the seed.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..validation import check_positive_int

DIRECTIONS = ("left", "right", "up", "down")
# (row, column) change of one step in each direction.
_DIRECTION_VECTORS = np.array([(0, -1), (0, 1), (-1, 0), (1, 0)])


class MovingSquares(NamedTuple):
    videos: np.ndarray  # (V, T, H, W) uint8, 255 on the square
    labels: np.ndarray  # (V,) int64 index into DIRECTIONS
    positions: np.ndarray  # (V, T, 2) top-left (row, column) of the square in each frame


def generate_moving_squares(num_videos: int, seed: int, num_frames: int = 4, size: int = 32,
                            square: int = 2, min_step: int = 7, max_step: int = 9) -> MovingSquares:
    """Generate ``num_videos`` videos, an equal number per direction (``num_videos % 4 == 0``)."""
    check_positive_int("num_videos", num_videos)
    check_positive_int("num_frames", num_frames, minimum=2)
    check_positive_int("square", square)
    check_positive_int("min_step", min_step)
    check_positive_int("max_step", max_step, minimum=min_step)
    if num_videos % len(DIRECTIONS):
        raise ValueError(f"num_videos must be a multiple of {len(DIRECTIONS)} for balanced labels, "
                         f"got {num_videos}")
    free = size - square  # the largest top-left coordinate that keeps the square inside
    if (num_frames - 1) * max_step > free:
        raise ValueError(
            f"a square of {square} px moving up to {max_step} px per step for {num_frames - 1} "
            f"steps does not fit a canvas of size={size}; use a larger canvas or smaller steps")

    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(num_videos) % len(DIRECTIONS))
    steps = rng.integers(min_step, max_step + 1, size=(num_videos, num_frames - 1))
    travelled = np.concatenate([np.zeros((num_videos, 1), int), np.cumsum(steps, 1)], axis=1)
    # Along the motion the start leaves room for the whole path; across it, anywhere.
    span = travelled[:, -1]
    start_along = rng.integers(0, free - span + 1)  # distance from the edge the square leaves
    across = rng.integers(0, free + 1, size=num_videos)

    vectors = _DIRECTION_VECTORS[labels]  # (V, 2)
    along = np.where(vectors.sum(1, keepdims=True) > 0, start_along[:, None] + travelled,
                     free - start_along[:, None] - travelled)  # (V, T)
    moves_vertically = vectors[:, :1] != 0
    positions = np.stack([np.where(moves_vertically, along, across[:, None]),
                          np.where(moves_vertically, across[:, None], along)], axis=-1)

    videos = np.zeros((num_videos, num_frames, size, size), np.uint8)
    for v, t in np.ndindex(num_videos, num_frames):
        row, column = positions[v, t]
        videos[v, t, row:row + square, column:column + square] = 255
    return MovingSquares(videos, labels.astype(np.int64), positions)

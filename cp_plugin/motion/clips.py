"""Clips made from real footage: objects cut from it moving over its own frames.

Two tasks are drawn from one video and one object set (:func:`cut_objects`: the most textured
of random crops of the footage):

- **motion** (:func:`motion_clips`): one object slides over a static background cut from
  another frame, ``min_step``..``max_step`` px per frame (one speed per clip) left, right, up or
  down, staying inside the frame. Both coordinates of its position are drawn as positions along
  such a path, so where it is in a frame has the same distribution for every direction, and the
  background, the object and the speed are drawn alike for all: no frame alone tells the label,
  only how the object moves between frames does. A network that averages single-frame features
  over time (C2D) cannot tell a clip from the same clip reversed.
- **appearance** (:func:`appearance_frames`): single frames with one object of the set pasted
  anywhere; the label is which object. It stands in for ImageNet pre-training: the network
  learns to single out and recognise the objects on the footage around them, which is what CP's
  neighbour search needs.

Everything follows from the seed; numpy and OpenCV (to read and resize) only.
"""
from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np

from ..read_errors import FileReadError
from ..validation import check_positive_int

DIRECTIONS = ("left", "right", "up", "down")
# (row, column) change of one step in each direction.
_DIRECTION_VECTORS = np.array([(0, -1), (0, 1), (-1, 0), (1, 0)])
#: Seed of the object set: training and validation sets (and both tasks) share the objects.
OBJECTS_SEED = 20190616


class Footage(NamedTuple):
    """Decoded frames (F, H, W, 3) uint8 RGB, and the file they came from."""
    frames: np.ndarray
    path: str


class LabelledClips(NamedTuple):
    videos: np.ndarray  # (V, T, S, S, 3) uint8 RGB
    labels: np.ndarray  # (V,) int64
    positions: np.ndarray  # (V, T, 2) top-left (row, column) of the moving patch; (V, 0, 2) if none


def read_footage(path: str, max_frames: int = 600, short_side: int = 128) -> Footage:
    """Decode up to ``max_frames`` frames of a video, resized so the short side is
    ``short_side`` px (backgrounds and patches are cut from these)."""
    import cv2

    if not os.path.isfile(path):
        raise FileReadError(f"footage {path!r}: no such file; give a video file OpenCV can read")
    capture = cv2.VideoCapture(path)
    frames = []
    while len(frames) < max_frames:
        ok, frame = capture.read()
        if not ok:
            break
        height, width = frame.shape[:2]
        scale = short_side / min(height, width)
        size = (max(short_side, round(width * scale)), max(short_side, round(height * scale)))
        frames.append(cv2.cvtColor(cv2.resize(frame, size, interpolation=cv2.INTER_AREA),
                                   cv2.COLOR_BGR2RGB))
    capture.release()
    if len(frames) < 2:
        raise FileReadError(f"footage {path!r}: OpenCV decoded {len(frames)} frames; the clip set "
                            f"needs a video of at least 2 frames it can read")
    return Footage(np.stack(frames), path)


def _crops(footage: Footage, rng: np.random.Generator, count: int, size: int,
           source_size: int) -> np.ndarray:
    """``count`` random crops of ``source_size`` px from random frames, resized to ``size``."""
    import cv2

    frames, height, width = footage.frames, *footage.frames.shape[1:3]
    source_size = min(source_size, height, width)
    out = np.empty((count, size, size, 3), np.uint8)
    for i in range(count):
        frame = frames[rng.integers(len(frames))]
        top, left = rng.integers(0, height - source_size + 1), rng.integers(0, width - source_size + 1)
        crop = frame[top:top + source_size, left:left + source_size]
        out[i] = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
    return out


def _paste(canvas: np.ndarray, patch: np.ndarray, row: int, column: int) -> None:
    """Paste ``patch`` with its top-left corner at (row, column), wrapping around the edges."""
    size = canvas.shape[0]
    rows = (row + np.arange(patch.shape[0])) % size
    columns = (column + np.arange(patch.shape[1])) % size
    canvas[np.ix_(rows, columns)] = patch


def _check_sizes(num_videos: int, size: int, patch: int, classes: int) -> None:
    check_positive_int("num_videos", num_videos)
    check_positive_int("patch", patch)
    check_positive_int("size", size, minimum=patch + 1)
    if num_videos % classes:
        raise ValueError(f"num_videos must be a multiple of {classes} for balanced labels, "
                         f"got {num_videos}")


def cut_objects(footage: Footage, num_objects: int, patch: int) -> np.ndarray:
    """The object set: the ``num_objects`` most textured of ``8 * num_objects`` random crops
    (pixel standard deviation), (num_objects, patch, patch, 3)."""
    check_positive_int("num_objects", num_objects)
    candidates = _crops(footage, np.random.default_rng(OBJECTS_SEED), 8 * num_objects, patch,
                        source_size=2 * patch)
    texture = candidates.reshape(len(candidates), -1).std(axis=1)
    return candidates[np.argsort(-texture, kind="stable")[:num_objects]]


def motion_clips(footage: Footage, num_videos: int, seed: int, num_frames: int = 4,
                 size: int = 64, patch: int = 16, min_step: int = 8,
                 max_step: int = 16, num_objects: int = 8) -> LabelledClips:
    """``num_videos`` clips (an equal number per direction) of an object moving over the footage."""
    _check_sizes(num_videos, size, patch, len(DIRECTIONS))
    check_positive_int("num_frames", num_frames, minimum=2)
    check_positive_int("min_step", min_step)
    check_positive_int("max_step", max_step, minimum=min_step)
    free = size - patch  # the largest top-left coordinate that keeps the patch inside
    if (num_frames - 1) * max_step > free:
        raise ValueError(f"a patch of {patch} px moving up to max_step={max_step} px per frame for "
                         f"{num_frames - 1} steps does not fit size={size}; use smaller steps, a "
                         f"smaller patch or fewer frames")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(num_videos) % len(DIRECTIONS))
    backgrounds = _crops(footage, rng, num_videos, size, source_size=2 * size)
    patches = cut_objects(footage, num_objects, patch)[rng.integers(num_objects, size=num_videos)]

    def paths(count):  # (count, T) positions along a motion that stays inside, leaving 0
        steps = rng.integers(min_step, max_step + 1, size=count)
        starts = rng.integers(0, free - (num_frames - 1) * steps + 1)
        return starts[:, None] + steps[:, None] * np.arange(num_frames)

    along = paths(num_videos)
    # Across the motion, a position drawn as one along a path is (a random frame of another
    # path): both coordinates then have the same distribution for every direction.
    across = paths(num_videos)[np.arange(num_videos), rng.integers(num_frames, size=num_videos)]
    vectors = _DIRECTION_VECTORS[labels]
    along = np.where(vectors.sum(1, keepdims=True) > 0, along, free - along)
    vertical = vectors[:, :1] != 0
    positions = np.stack([np.where(vertical, along, across[:, None]),
                          np.where(vertical, across[:, None], along)], axis=-1)  # (V, T, 2)
    videos = np.repeat(backgrounds[:, None], num_frames, axis=1)
    for v, t in np.ndindex(num_videos, num_frames):
        _paste(videos[v, t], patches[v], *positions[v, t])
    return LabelledClips(videos, labels.astype(np.int64), positions)


def appearance_frames(footage: Footage, num_videos: int, seed: int, size: int = 64,
                      patch: int = 16, num_objects: int = 8) -> LabelledClips:
    """``num_videos`` single frames (an equal number per object) with one object of the set
    pasted anywhere; the label is which object."""
    _check_sizes(num_videos, size, patch, num_objects)
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(num_videos) % num_objects)
    frames = _crops(footage, rng, num_videos, size, source_size=2 * size)
    objects = cut_objects(footage, num_objects, patch)
    positions = rng.integers(0, size, size=(num_videos, 1, 2))
    for v, label in enumerate(labels):
        _paste(frames[v], objects[label], *positions[v, 0])
    return LabelledClips(frames[:, None], labels.astype(np.int64), positions)

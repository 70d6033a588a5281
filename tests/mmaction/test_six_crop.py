"""SixCrop (CPNet's 6-crop test views) against synthetic frames, ThreeCrop and a real pipeline."""
import copy

import cp_plugin.mmaction  # noqa: F401  (first: repairs mmaction2 before anything imports its models)
import numpy as np
import pytest

pytest.importorskip("mmaction")
cv2 = pytest.importorskip("cv2")

import cp_plugin.mmaction.six_crop  # noqa: E402,F401  (registers SixCrop)
from cp_plugin.mmaction.six_crop import SixCrop, crop_offsets  # noqa: E402
from mmaction.registry import TRANSFORMS  # noqa: E402


def coordinate_frames(height, width, num_frames):
    """Frames whose channels hold (x, y, frame index), so every crop reveals where it came from."""
    ys, xs = np.mgrid[0:height, 0:width]
    return [np.stack([xs, ys, np.full_like(xs, t)], axis=-1).astype(np.int32)
            for t in range(num_frames)]


def assert_crop_at(crop, x0, y0, width, height, frame):
    assert crop.shape == (height, width, 3)
    np.testing.assert_array_equal(crop[0, :, 0], np.arange(x0, x0 + width))
    np.testing.assert_array_equal(crop[:, 0, 1], np.arange(y0, y0 + height))
    assert (crop[..., 2] == frame).all()


def test_registered_and_repr():
    assert TRANSFORMS.get("SixCrop") is SixCrop
    assert repr(SixCrop(32)) == "SixCrop(crop_size=(32, 32), num_crops=6)"
    assert repr(SixCrop((40, 32), num_crops=3)) == "SixCrop(crop_size=(40, 32), num_crops=3)"


def test_six_full_height_crops_landscape():
    frames = coordinate_frames(40, 100, 1)
    out = SixCrop(40).transform(dict(imgs=frames))
    # free width 60, step 12: both ends first, then the four interior windows
    expected_x = [0, 60, 12, 24, 36, 48]
    assert len(out["imgs"]) == 6
    for crop, x0 in zip(out["imgs"], expected_x):
        assert_crop_at(crop, x0, 0, 40, 40, frame=0)
    np.testing.assert_array_equal(out["crop_bbox"], [[x, 0, x + 40, 40] for x in expected_x])
    assert out["img_shape"] == (40, 40)
    # the union of the crops is the whole frame
    covered = np.zeros(100, bool)
    for x0 in expected_x:
        covered[x0:x0 + 40] = True
    assert covered.all()


def test_offsets_follow_the_authors_rule_when_span_does_not_divide():
    # free length 32, step 32 // 5 = 6: interior at 6, 12, 18, 24; the far end stays at 32
    assert crop_offsets(64, 32, 6) == [0, 32, 6, 12, 18, 24]
    assert crop_offsets(32, 32, 6) == [0] * 6
    assert crop_offsets(10, 4, 3) == [0, 6, 3]


def test_crop_major_order_over_frames():
    frames = coordinate_frames(8, 18, 3)
    out = SixCrop(8).transform(dict(imgs=frames, img_shape=(8, 18)))
    expected_x = [0, 10, 2, 4, 6, 8]
    assert len(out["imgs"]) == 6 * 3
    for c, x0 in enumerate(expected_x):
        for t in range(3):
            assert_crop_at(out["imgs"][c * 3 + t], x0, 0, 8, 8, frame=t)
    assert out["crop_bbox"].shape == (18, 4)
    np.testing.assert_array_equal(out["crop_bbox"][3:6], [[10, 0, 18, 8]] * 3)


def test_portrait_crops_run_along_height():
    frames = coordinate_frames(100, 40, 2)
    out = SixCrop(40).transform(dict(imgs=frames))
    expected_y = [0, 60, 12, 24, 36, 48]
    for c, y0 in enumerate(expected_y):
        for t in range(2):
            assert_crop_at(out["imgs"][c * 2 + t], 0, y0, 40, 40, frame=t)
    np.testing.assert_array_equal(out["crop_bbox"][::2], [[0, y, 40, y + 40] for y in expected_y])


def test_non_square_crop_size_is_w_h():
    frames = coordinate_frames(30, 50, 1)
    out = SixCrop((20, 30), num_crops=4).transform(dict(imgs=frames))
    for crop, x0 in zip(out["imgs"], [0, 30, 10, 20]):
        assert_crop_at(crop, x0, 0, 20, 30, frame=0)


@pytest.mark.parametrize("height,width,crop", [(32, 48, 32), (48, 32, 32), (24, 60, 24), (20, 20, 20)])
def test_three_crops_match_mmaction_three_crop(height, width, crop):
    from mmaction.datasets.transforms import ThreeCrop

    frames = [np.random.default_rng(t).integers(0, 255, (height, width, 3), dtype=np.uint8)
              for t in range(4)]
    ours = SixCrop(crop, num_crops=3).transform(dict(imgs=copy.deepcopy(frames), num_clips=1))
    theirs = ThreeCrop(crop).transform(dict(imgs=copy.deepcopy(frames), num_clips=1))
    assert ours.keys() == theirs.keys()
    assert len(ours["imgs"]) == len(theirs["imgs"]) == 12
    for a, b in zip(ours["imgs"], theirs["imgs"]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ours["crop_bbox"], theirs["crop_bbox"])
    assert ours["img_shape"] == theirs["img_shape"]


def test_three_crops_reach_the_far_edge_when_three_crop_does_not():
    # free width 15 is odd: ThreeCrop's right crop starts at 2 * (15 // 2) = 14, ours at 15
    from mmaction.datasets.transforms import ThreeCrop

    frames = coordinate_frames(16, 31, 1)
    ours = SixCrop(16, num_crops=3).transform(dict(imgs=copy.deepcopy(frames)))
    theirs = ThreeCrop(16).transform(dict(imgs=copy.deepcopy(frames)))
    np.testing.assert_array_equal(ours["crop_bbox"][:, 0], [0, 15, 7])
    np.testing.assert_array_equal(theirs["crop_bbox"][:, 0], [0, 14, 7])
    assert ours["imgs"][1][0, -1, 0] == 30  # the last column of the frame is seen


def write_video(path, num_frames=16, height=48, width=64):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (width, height))
    assert writer.isOpened()
    for t in range(num_frames):
        frame = np.zeros((height, width, 3), np.uint8)
        frame[:, :, 0] = np.linspace(0, 255, width, dtype=np.uint8)[None]
        frame[:, :, 1] = 10 * t
        writer.write(frame)
    writer.release()
    assert path.stat().st_size > 0


def test_in_mmaction_test_pipeline(tmp_path):
    from mmengine.dataset import Compose
    from mmengine.registry import init_default_scope

    init_default_scope("mmaction")
    video = tmp_path / "clip.mp4"
    write_video(video)
    decode = [dict(type="DecordInit"),
              dict(type="SampleFrames", clip_len=4, frame_interval=1, num_clips=2, test_mode=True),
              dict(type="DecordDecode"),
              dict(type="Resize", scale=(-1, 32))]
    pack = [dict(type="SixCrop", crop_size=32),
            dict(type="FormatShape", input_format="NCTHW"),
            dict(type="PackActionInputs")]
    sample = dict(filename=str(video), label=3, start_index=0, modality="RGB")

    packed = Compose(decode + pack)(copy.deepcopy(sample))
    inputs = packed["inputs"]
    assert tuple(inputs.shape) == (2 * 6, 3, 4, 32, 32)
    assert packed["data_samples"].gt_label.item() == 3

    # The packed views are the six crops of the resized frames, crop-major then clip-major.
    resized = Compose(decode)(copy.deepcopy(sample))
    frames = np.stack(resized["imgs"])  # (num_clips * clip_len, 32, 43, 3)
    assert frames.shape[1:3] == (32, 43)
    for c, x0 in enumerate(crop_offsets(43, 32, 6)):
        for k in range(2):
            expected = frames[k * 4:(k + 1) * 4, :, x0:x0 + 32].transpose(3, 0, 1, 2)
            np.testing.assert_array_equal(inputs[c * 2 + k].numpy(), expected)


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(crop_size=0), ValueError, "crop_size must be positive"),
    (dict(crop_size=(32, -1)), ValueError, r"crop_size must be positive.*\(h\) = -1"),
    (dict(crop_size=32.0), TypeError, "crop_size must be an int"),
    (dict(crop_size=True), TypeError, "crop_size must be an int"),
    (dict(crop_size=(32, 32, 3)), ValueError, r"crop_size must be an int or a \(w, h\) pair"),
    (dict(crop_size=32, num_crops=1), ValueError, "num_crops must be >= 2"),
    (dict(crop_size=32, num_crops=6.0), TypeError, "num_crops must be an int"),
])
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        SixCrop(**kwargs)


def test_crop_larger_than_frame():
    with pytest.raises(ValueError, match=r"crop_size \(w, h\) = \(64, 64\) is larger than the frames"):
        SixCrop(64).transform(dict(imgs=coordinate_frames(48, 80, 1)))
    with pytest.raises(ValueError, match="crop_length=5 is larger than image_length=4"):
        crop_offsets(4, 5, 6)


def test_crop_that_spans_neither_side():
    with pytest.raises(ValueError, match=r"full height or the full width.*Resize\(scale=\(-1, 32\)\)"):
        SixCrop(32).transform(dict(imgs=coordinate_frames(40, 60, 1)))


def test_bad_frames():
    with pytest.raises(ValueError, match="no frames"):
        SixCrop(8).transform(dict(imgs=[]))
    frames = coordinate_frames(8, 20, 1) + coordinate_frames(8, 22, 1)
    with pytest.raises(ValueError, match="frame 1 is 8x22"):
        SixCrop(8).transform(dict(imgs=frames))
    with pytest.raises(RuntimeError, match="Fuse"):
        SixCrop(8).transform(dict(imgs=coordinate_frames(8, 20, 1), lazy=dict()))

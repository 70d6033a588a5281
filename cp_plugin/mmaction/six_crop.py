"""``SixCrop``: CPNet's 6-crop test-time views as an mmaction2 transform.

CPNet evaluates "spatially fully-convolutionally": the shorter side of every frame is resized
to S, and the network sees six full-height S x S windows that slide along the longer side,
so that together they cover the whole frame. mmaction2 has ``ThreeCrop`` (the same idea with
three windows) but no six-window version; this module adds it, registered as ``SixCrop``.
"""
from __future__ import annotations

import warnings
from typing import List, Sequence, Tuple, Union

import numpy as np
from mmcv.transforms import BaseTransform

from mmaction.registry import TRANSFORMS

from ..validation import check_positive_int

__all__ = ["SixCrop", "crop_offsets"]


def crop_offsets(image_length: int, crop_length: int, num_crops: int) -> List[int]:
    """Start positions of ``num_crops`` windows of ``crop_length`` along an axis of ``image_length``.

    Both ends come first (0 and ``image_length - crop_length``), then the interior windows from
    low to high at multiples of ``step = (image_length - crop_length) // (num_crops - 1)``. This is
    the rule of the CPNet authors' evaluation code (``evaluate.py``, ``fcn=6``) and, for
    ``num_crops=3``, the order and positions of mmaction2's ``ThreeCrop``. When the free length
    does not divide by ``num_crops - 1``, the last gap is wider than the others by the remainder;
    the last window always ends exactly at the image edge, so the whole axis is covered.
    """
    check_positive_int("image_length", image_length)
    check_positive_int("crop_length", crop_length)
    check_positive_int("num_crops", num_crops, minimum=2)
    if crop_length > image_length:
        raise ValueError(
            f"crop_length={crop_length} is larger than image_length={image_length}; "
            f"resize the image so that it is at least as large as the crop.")
    span = image_length - crop_length
    step = span // (num_crops - 1)
    return [0, span] + [i * step for i in range(1, num_crops - 1)]


def _check_crop_size(crop_size) -> Tuple[int, int]:
    """``crop_size`` as a ``(w, h)`` pair of positive ints."""
    if isinstance(crop_size, (list, tuple)):
        if len(crop_size) != 2:
            raise ValueError(
                f"crop_size must be an int or a (w, h) pair, got {len(crop_size)} values "
                f"{tuple(crop_size)!r}")
        pair = tuple(crop_size)
    else:
        pair = (crop_size, crop_size)
    for name, value in zip(("crop_size (w)", "crop_size (h)"), pair):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(
                f"crop_size must be an int or a (w, h) pair of ints, got {crop_size!r} "
                f"({name} is {type(value).__name__})")
        if value < 1:
            raise ValueError(f"crop_size must be positive, got {crop_size!r} ({name} = {value})")
    return pair


@TRANSFORMS.register_module()
class SixCrop(BaseTransform):
    """Crop every frame into ``num_crops`` windows that tile the longer side (CPNet's 6-crop test).

    The CPNet paper's "6-crop spatially fully-convolutional inference": frames are resized so
    the shorter side equals the crop size S (e.g. ``Resize(scale=(-1, S))``), then six full-height
    S x S crops are taken along the longer side: the two ends plus four windows in between,
    spaced as in :func:`crop_offsets`. The whole frame is seen at full resolution (unlike a
    single centre crop, nothing at the left and right edges is lost), and the head averages the
    softmax scores over crops x clips (``average_clips='prob'`` in the head / ``test_cfg``).

    Behaves like mmaction2's ``ThreeCrop`` (which equals ``SixCrop(..., num_crops=3)`` whenever
    the free length is even; when it is odd, ``ThreeCrop`` stops one pixel short of the far
    edge and this transform does not):

    * Crops run along the width when the crop spans the full image height, otherwise along the
      height when it spans the full width (portrait frames); one of the two must hold.
    * Output is crop-major: all frames of crop 0, then all frames of crop 1, ... (so
      ``FormatShape`` yields ``num_crops * num_clips`` views). Crop order: both ends first,
      then the interior windows from left to right (top to bottom).
    * Required keys: ``imgs`` (list of H x W x C frames of equal size). Added or modified keys:
      ``imgs``, ``crop_bbox`` (one ``[x1, y1, x2, y2]`` row per output frame) and ``img_shape``.

    Args:
        crop_size (int | tuple[int, int]): (w, h) of the crops; an int means a square crop.
        num_crops (int): number of windows, >= 2. Defaults to 6.
    """

    def __init__(self, crop_size: Union[int, Sequence[int]], num_crops: int = 6) -> None:
        self.crop_size = _check_crop_size(crop_size)
        self.num_crops = check_positive_int("num_crops", num_crops, minimum=2)

    def transform(self, results: dict) -> dict:
        """Replace ``results['imgs']`` by the crops of every frame, crop-major."""
        if "lazy" in results:
            raise RuntimeError(
                "SixCrop cannot follow lazy transforms; put a Fuse transform before SixCrop.")
        if "gt_bboxes" in results or "proposals" in results:
            warnings.warn("SixCrop cannot process bounding boxes")

        imgs = results["imgs"]
        if len(imgs) == 0:
            raise ValueError("SixCrop got no frames: results['imgs'] is empty")
        img_h, img_w = imgs[0].shape[:2]
        for i, img in enumerate(imgs):
            if img.shape[:2] != (img_h, img_w):
                raise ValueError(
                    f"SixCrop needs frames of one size; frame 0 is {img_h}x{img_w} (h x w) but "
                    f"frame {i} is {img.shape[0]}x{img.shape[1]}")
        offsets = self._offsets(img_h, img_w)

        crop_w, crop_h = self.crop_size
        cropped, crop_bboxes = [], []
        for x, y in offsets:
            cropped.extend(img[y:y + crop_h, x:x + crop_w] for img in imgs)
            crop_bboxes.extend([[x, y, x + crop_w, y + crop_h]] * len(imgs))

        results["imgs"] = cropped
        results["crop_bbox"] = np.array(crop_bboxes)
        results["img_shape"] = cropped[0].shape[:2]
        return results

    def _offsets(self, img_h: int, img_w: int) -> List[Tuple[int, int]]:
        """(x, y) top-left corners of the crops for an ``img_h`` x ``img_w`` frame."""
        crop_w, crop_h = self.crop_size
        if crop_w > img_w or crop_h > img_h:
            raise ValueError(
                f"SixCrop crop_size (w, h) = {self.crop_size} is larger than the frames "
                f"(w, h) = ({img_w}, {img_h}); resize the shorter side to the crop size first, "
                f"e.g. Resize(scale=(-1, {min(crop_w, crop_h)})).")
        if crop_h == img_h:
            return [(x, 0) for x in crop_offsets(img_w, crop_w, self.num_crops)]
        if crop_w == img_w:
            return [(0, y) for y in crop_offsets(img_h, crop_h, self.num_crops)]
        raise ValueError(
            f"SixCrop crops must span the full height or the full width of the frames, but "
            f"crop_size (w, h) = {self.crop_size} and the frames are (w, h) = ({img_w}, {img_h}); "
            f"resize the shorter side to the crop size first, "
            f"e.g. Resize(scale=(-1, {min(crop_w, crop_h)})).")

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(crop_size={self.crop_size}, num_crops={self.num_crops})"

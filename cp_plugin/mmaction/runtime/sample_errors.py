"""``NameReadFailures``: a pipeline step whose reading and decoding errors name the file.

A truncated or corrupted video makes decord raise ``Error reading 17278 bytes...`` with no file
name, and a run over a million clips then stops without saying which one. Wrap a pipeline's
reading steps (``DecordInit``, ``DecordDecode``, ``RawFrameDecode`` ...) in this transform, one
step each so that the pipeline keeps its length and indices, as our shipped configs do, and a
failure there is re-raised as :class:`SampleLoadError` naming the sample's index and file, with the original exception chained. Errors that are not about reading
(a wrong key, a bad argument in a config) pass through unchanged, and nothing outside the
wrapped steps is touched.
"""
from __future__ import annotations

from mmaction.registry import TRANSFORMS
from mmcv.transforms import BaseTransform

from ...read_errors import FileReadError, read_errors

#: Keys under which mmaction2's datasets keep a sample's file or folder, in order of preference.
_SOURCE_KEYS = ("filename", "frame_dir", "audio_path", "img_path")


class SampleLoadError(FileReadError):
    """A dataset sample could not be read or decoded; the message names its file."""


@TRANSFORMS.register_module()
class NameReadFailures(BaseTransform):
    """Runs ``transform`` (a reading or decoding step); its read errors name the sample.

    Args:
        transform: the step's config, e.g. ``dict(type='DecordDecode')``.

    Examples::

        >>> train_pipeline = [
        ...     dict(type='NameReadFailures', transform=dict(type='DecordInit')),
        ...     dict(type='SampleFrames', clip_len=8, frame_interval=4, num_clips=1),
        ...     dict(type='NameReadFailures', transform=dict(type='DecordDecode')),
        ...     dict(type='Resize', scale=(-1, 256)), ...]
    """

    def __init__(self, transform: dict) -> None:
        self.step = TRANSFORMS.build(transform)

    def transform(self, results: dict) -> dict:
        try:
            return self.step(results)
        except read_errors() as error:
            source = next((results[key] for key in _SOURCE_KEYS if key in results), None)
            raise SampleLoadError(
                f"could not read sample {results.get('sample_idx', '?')} "
                f"({source or 'no file recorded'}): {type(error).__name__}: {error}. Check or "
                f"re-encode this file, or remove it from the annotation file.") from error

    def __repr__(self) -> str:
        return f"{type(self).__name__}(transform={self.step!r})"

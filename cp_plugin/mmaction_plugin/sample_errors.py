"""Errors while loading a sample name the file: mmaction2's decoders often do not.

A truncated or corrupted video makes decord raise ``Error reading 17278 bytes...`` with no file
name, and a run over a million clips then stops without saying which one. Importing this module
wraps mmaction2's dataset sample loading so that any failure is re-raised as
:class:`SampleLoadError` naming the dataset, the index and the file, the original chained.
"""
from __future__ import annotations

import functools

from mmaction.datasets import BaseActionDataset

#: Keys under which mmaction2's datasets keep a sample's file or folder, in order of preference.
_SOURCE_KEYS = ("filename", "frame_dir", "audio_path", "img_path")


class SampleLoadError(RuntimeError):
    """A dataset sample could not be loaded; the message names its file."""


def _describe(dataset, idx) -> str:
    try:
        info = dataset.get_data_info(idx)
    except Exception:  # the index itself is bad: say so rather than hide the first error
        return f"sample {idx} of {type(dataset).__name__}"
    source = next((info[key] for key in _SOURCE_KEYS if key in info), None)
    return f"sample {idx} of {type(dataset).__name__} ({source or 'no file recorded'})"


def _naming_failures(prepare_data):
    @functools.wraps(prepare_data)
    def wrapper(self, idx):
        try:
            return prepare_data(self, idx)
        except SampleLoadError:
            raise
        except Exception as error:
            raise SampleLoadError(
                f"could not load {_describe(self, idx)}: {type(error).__name__}: {error}. "
                f"Check or re-encode this file, or remove it from the annotation file."
            ) from error

    wrapper._names_failures = True
    return wrapper


def name_failing_samples() -> None:
    """Wrap ``BaseActionDataset.prepare_data`` (idempotent)."""
    if not getattr(BaseActionDataset.prepare_data, "_names_failures", False):
        BaseActionDataset.prepare_data = _naming_failures(BaseActionDataset.prepare_data)

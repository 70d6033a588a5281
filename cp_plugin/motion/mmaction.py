"""The footage clip sets as an mmaction2 dataset (registered when imported, as the motion configs do)."""
from __future__ import annotations

from typing import Sequence

from .. import mmaction as _glue  # noqa: F401  (first: repairs mmaction2, registers CP's names)

from mmaction.datasets import BaseActionDataset  # noqa: E402
from mmaction.registry import DATASETS  # noqa: E402

from .clips import DIRECTIONS, appearance_frames, motion_clips, read_footage  # noqa: E402
from .footage import default_footage  # noqa: E402

TASKS = {"motion": motion_clips, "appearance": appearance_frames}


@DATASETS.register_module()
class FootageClipDataset(BaseActionDataset):
    """Clips cut from real footage (:mod:`cp_plugin.motion.clips`), generated in memory.

    Args:
        task: ``'motion'`` (a patch moving left, right, up or down; ``num_frames`` frames) or
            ``'appearance'`` (one frame, which of ``num_objects`` objects is pasted on it).
        num_videos: clips in the set (a multiple of the task's class count).
        seed: the set's seed; training and validation sets take different seeds.
        footage: a video file; ``None`` takes :func:`cp_plugin.motion.footage.default_footage`.
        clip_cfg: passed on to the generator (``size``, ``patch``, ``num_objects``; for motion
            also ``num_frames``, ``min_step``, ``max_step``).

    Samples are RGB frames ready for mmaction2's ``FormatShape`` and ``PackActionInputs``.
    """

    def __init__(self, task: str, num_videos: int, seed: int, footage: str = None,
                 clip_cfg: dict = None, pipeline: Sequence = (), **kwargs) -> None:
        if task not in TASKS:
            raise ValueError(f"FootageClipDataset.task must be one of {sorted(TASKS)}, got {task!r}")
        self.task, self.num_videos, self.seed = task, num_videos, seed
        self.footage = footage or default_footage()
        self.clip_cfg = dict(clip_cfg or {})
        self.generator = TASKS[task]
        if task == "motion":
            classes = DIRECTIONS
        else:
            classes = tuple(f"object {i}" for i in range(self.clip_cfg.get("num_objects", 8)))
        super().__init__(ann_file="", pipeline=list(pipeline), num_classes=len(classes),
                         **kwargs)
        self._metainfo["classes"] = classes

    def load_data_list(self) -> list:
        clips = self.generator(read_footage(self.footage), self.num_videos, self.seed,
                               **self.clip_cfg)
        return [dict(imgs=list(video), label=int(label), clip_len=video.shape[0], num_clips=1,
                     modality="RGB", original_shape=video.shape[1:3], img_shape=video.shape[1:3])
                for video, label in zip(clips.videos, clips.labels)]

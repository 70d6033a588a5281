"""Trained recognizers out of training: loaded by mmaction2's own API, run on a video file or a
dataset sample, and as a plain ``clips -> class scores`` module for torch.export and ONNX."""
from __future__ import annotations

import os.path as osp
from typing import Callable, List, Optional, Tuple

import torch
from mmaction.apis import init_recognizer
from mmaction.models import Recognizer2D, Recognizer3D
from mmengine.runner import load_checkpoint
from torch import nn

from ..read_errors import naming_the_file
from ..validation import check_clips, input_channels
from .compat import mmengine_checkpoints_allowed


def load_recognizer(config, checkpoint: Optional[str] = None, device: str = "cpu") -> nn.Module:
    """The recognizer of ``config`` (a path or a Config), built by mmaction2's
    ``init_recognizer`` (in eval mode, ``model.cfg`` set), with the weights of ``checkpoint``
    (a Runner checkpoint or a bare state dict) loaded strictly: a checkpoint of another model
    raises instead of leaving layers at random."""
    if isinstance(config, str) and not osp.isfile(config):
        raise FileNotFoundError(f"config {config!r} does not exist")
    if checkpoint is not None and not osp.isfile(checkpoint):
        raise FileNotFoundError(f"checkpoint {checkpoint!r} does not exist; give the .pth a "
                                f"training run wrote (work_dirs/<config>/epoch_N.pth)")
    model = init_recognizer(config, None, device=device)
    if checkpoint is not None:
        with mmengine_checkpoints_allowed():
            load_checkpoint(model, checkpoint, map_location=device, strict=True)
    return model


def recognize_video(recognizer: nn.Module, video: str) -> torch.Tensor:
    """Class probabilities (num_classes,) of ``recognizer`` (from :func:`load_recognizer`) for a
    video file, through mmaction2's ``inference_recognizer`` and the config's test pipeline.
    A file that cannot be read raises :class:`cp_plugin.read_errors.FileReadError` naming it."""
    from mmaction.apis import inference_recognizer

    if not osp.isfile(video):
        raise FileNotFoundError(f"video {video!r} does not exist")
    with naming_the_file(video, "video"):
        return inference_recognizer(recognizer, video).pred_score.float()


def class_names(recognizer: nn.Module) -> Optional[List[str]]:
    """The class names of ``recognizer``'s config (from :func:`load_recognizer`): its test
    dataset's ``metainfo['classes']``, else the dataset class's ``METAINFO``; None if neither."""
    from mmaction.registry import DATASETS

    dataset = recognizer.cfg.get("test_dataloader", {}).get("dataset", {})
    classes = (dataset.get("metainfo") or {}).get("classes")
    if classes is None and isinstance(dataset.get("type"), str):
        dataset_class = DATASETS.get(dataset["type"])
        classes = getattr(dataset_class, "METAINFO", {}).get("classes")
    return list(classes) if classes else None


def recognizer_sample(recognizer: nn.Module, video: Optional[str] = None,
                      toy_index: Optional[int] = None) -> Tuple[Callable[[], object], torch.Tensor]:
    """(run, frames) for one sample: a video file through the config's test pipeline, or sample
    ``toy_index`` of its validation set. ``run()`` runs ``recognizer`` (from
    :func:`load_recognizer`) on the sample's first view; ``frames`` (T, H, W, C) in 0..1 are
    that view's frames for display (every view's, for 2D recognizers)."""
    from mmaction.registry import DATASETS
    from mmengine.dataset import Compose

    cfg = recognizer.cfg
    if (video is None) == (toy_index is None):
        raise ValueError("give exactly one of video (a file) and toy_index (a dataset sample)")
    if video is not None:
        if not osp.isfile(video):
            raise FileNotFoundError(f"video {video!r} does not exist")
        pipeline = Compose(cfg.test_dataloader.dataset.pipeline)
        with naming_the_file(video, "video"):
            sample = pipeline(dict(filename=video, label=-1, start_index=0, modality="RGB"))
    else:
        sample = DATASETS.build(cfg.val_dataloader.dataset)[toy_index]
    inputs = sample["inputs"]
    if inputs.dim() == 5:  # (views, C, T, H, W): the first view is enough to draw
        inputs = inputs[:1]
        frames = inputs[0].permute(1, 2, 3, 0)
    else:  # (views * T, C, H, W) for 2D recognizers: every view, the first clip drawn
        frames = inputs.permute(0, 2, 3, 1)
    batch = recognizer.data_preprocessor(
        dict(inputs=[inputs], data_samples=[sample["data_samples"]]), False)
    return (lambda: recognizer(batch["inputs"], batch["data_samples"], mode="tensor"),
            frames.float() / 255)

class ClipRecognizer(nn.Module):
    """Backbone, neck and head of an mmaction2 recognizer on one view per sample.

    The input is what the recognizer's data preprocessor hands the backbone: clips already
    normalised with the config's ``mean`` and ``std``. A Recognizer2D (TSN, TSM) gets the T
    frames as its segments; averaging several views (test crops, clips) is left to the caller.

    Shape:
        - Input: clips (N, C, T, H, W).
        - Output: (N, num_classes) class scores (the head's, before softmax).

    Examples::

        >>> model = ClipRecognizer(load_recognizer('config.py', 'epoch_10.pth'))  # doctest: +SKIP
    """

    def __init__(self, recognizer: nn.Module) -> None:
        super().__init__()
        if not isinstance(recognizer, (Recognizer2D, Recognizer3D)):
            raise TypeError(f"recognizer must be an mmaction2 Recognizer2D or Recognizer3D, "
                            f"got {type(recognizer).__name__}")
        self.recognizer = recognizer

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        check_clips(clips, "clips", type(self).__name__, input_channels(self.recognizer.backbone))
        if isinstance(self.recognizer, Recognizer2D):
            # (N, T, C, H, W): T segments, contiguous for Recognizer2D's view into frames.
            inputs = clips.transpose(1, 2).contiguous()
        else:
            inputs = clips.unsqueeze(1)  # (N, 1, C, T, H, W): one view
        return self.recognizer(inputs, mode="tensor", stage="head")

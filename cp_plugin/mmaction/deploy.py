"""Trained recognizers out of training: loaded by mmaction2's own API, and as a plain
``clips -> class scores`` module for torch.export and ONNX."""
from __future__ import annotations

import os.path as osp
from typing import Optional

import torch
from mmaction.apis import init_recognizer
from mmaction.models import Recognizer2D, Recognizer3D
from mmengine.runner import load_checkpoint
from torch import nn

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

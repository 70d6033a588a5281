"""Trained timm video models out of training: built from a checkpoint, run on a video file."""
from __future__ import annotations

import os.path as osp
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from cp_plugin.read_errors import naming_the_file

__all__ = ["clip_from_video", "load_video_model", "read_state_dict"]


def read_state_dict(path: str) -> dict:
    """The weights in ``path``: a bare state dict, or a training checkpoint holding one under
    ``'state_dict'`` or ``'model'`` (timm's and mmengine's). Read with torch's
    ``weights_only`` check; a missing or damaged file raises an error naming it."""
    import pickle

    if not osp.isfile(path):
        raise FileNotFoundError(f"checkpoint {path!r} does not exist")
    with naming_the_file(path, "checkpoint", errors=(pickle.UnpicklingError, ValueError)):
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(checkpoint, dict) and isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
    if not isinstance(checkpoint, dict) or not all(isinstance(v, torch.Tensor)
                                                    for v in checkpoint.values()):
        raise ValueError(f"checkpoint {path!r} holds no state dict (tensors by parameter name)")
    return {key[len("module."):] if key.startswith("module.") else key: value
            for key, value in checkpoint.items()}


def load_video_model(name: str, checkpoint: Optional[str] = None,
                     num_classes: Optional[int] = None, **kwargs) -> nn.Module:
    """A timm video model (``cpnet_*`` names included) in eval mode, with ``checkpoint``'s
    weights loaded strictly; its class count is read from the checkpoint's classifier unless
    ``num_classes`` is given (and then checked against it). ``kwargs`` go to
    ``timm.create_model``.

    Examples::

        >>> model = load_video_model("cpnet_resnet18", "epoch_10.pth")  # doctest: +SKIP
    """
    import timm

    from . import models  # noqa: F401  (registers the cpnet_* names)

    state = None if checkpoint is None else read_state_dict(checkpoint)
    model = timm.create_model(name, **kwargs, **({} if num_classes is None
                                                  else dict(num_classes=num_classes)))
    if state is None:
        return model.eval()
    classifier = f"{model.pretrained_cfg.get('classifier', 'fc')}.weight"
    saved = state.get(classifier)
    if saved is not None and saved.shape[0] != model.num_classes:
        if num_classes is not None:
            raise ValueError(f"checkpoint {checkpoint!r} scores {saved.shape[0]} classes "
                             f"({classifier} is {tuple(saved.shape)}) but num_classes="
                             f"{num_classes} was asked for; leave num_classes out to use "
                             f"the checkpoint's")
        model.reset_classifier(saved.shape[0])
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise ValueError(f"checkpoint {checkpoint!r} does not fit {name!r}: {error}") from error
    return model.eval()


def clip_from_video(model: nn.Module, video: str, num_frames: int = 8
                    ) -> Tuple[torch.Tensor, torch.Tensor]:
    """(clip, frames): ``num_frames`` frames spread evenly over a video file, resized and
    normalised by ``model``'s timm data config into a (1, 3, T, H, W) clip, and the resized
    frames (T, H, W, 3) in 0..1 for display. A file decord cannot read raises an error naming it."""
    import decord
    from timm.data import resolve_model_data_config

    if not osp.isfile(video):
        raise FileNotFoundError(f"video {video!r} does not exist")
    with naming_the_file(video, "video"):
        reader = decord.VideoReader(video)
        indices = torch.linspace(0, len(reader) - 1, num_frames).round().long().tolist()
        frames = torch.from_numpy(reader.get_batch(indices).asnumpy()).float() / 255
    data_cfg = resolve_model_data_config(model)
    clip = F.interpolate(frames.permute(0, 3, 1, 2), size=data_cfg["input_size"][1:],
                         mode="bilinear", align_corners=False)  # (T, 3, H, W)
    mean = torch.tensor(data_cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(data_cfg["std"]).view(1, 3, 1, 1)
    shown = clip.permute(0, 2, 3, 1)
    return ((clip - mean) / std).permute(1, 0, 2, 3)[None], shown

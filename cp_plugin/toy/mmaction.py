"""The toy task in mmaction2: the moving-square dataset and the layers of the Table 1 networks.

Importing this module registers them (and, through :mod:`cp_plugin.mmaction`, cp_plugin's
modules): the toy configs list it in ``custom_imports``.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from .. import mmaction as _glue  # noqa: F401  (first: repairs mmaction2, registers CPModule)

from mmaction.datasets import BaseActionDataset  # noqa: E402
from mmaction.registry import DATASETS, MODELS  # noqa: E402
from mmengine.model import BaseModule  # noqa: E402

from ..layout import frames_to_video, video_to_frames  # noqa: E402
from .moving_square import DIRECTIONS, generate_moving_squares  # noqa: E402


@DATASETS.register_module()
class MovingSquareDataset(BaseActionDataset):
    """Moving-square videos generated in memory (see :mod:`cp_plugin.toy.moving_square`).

    Each sample is 4 grey 32x32 frames (one channel) as a single clip, ready for mmaction2's
    ``FormatShape`` and ``PackActionInputs``; ``generator_cfg`` is passed on to the generator.
    """

    METAINFO = dict(classes=DIRECTIONS)

    def __init__(self, num_videos: int, seed: int, pipeline: Sequence = (),
                 generator_cfg: Optional[dict] = None, **kwargs) -> None:
        self.num_videos = num_videos
        self.seed = seed
        self.generator_cfg = dict(generator_cfg or {})
        super().__init__(ann_file="", pipeline=list(pipeline), num_classes=len(DIRECTIONS),
                         **kwargs)

    def load_data_list(self) -> list:
        squares = generate_moving_squares(self.num_videos, self.seed, **self.generator_cfg)
        return [dict(imgs=list(video[..., None]), label=int(label), clip_len=video.shape[0],
                     num_clips=1, modality="RGB", original_shape=video.shape[1:],
                     img_shape=video.shape[1:])
                for video, label in zip(squares.videos, squares.labels)]


@MODELS.register_module()
class ConvBNReLU3d(nn.Sequential):
    """Conv3d (no bias, 'same' padding) -> BN -> ReLU; kernel given as (T, H, W)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size=(1, 3, 3),
                 padding_mode: str = "zeros") -> None:
        kernel_size = tuple(kernel_size)
        super().__init__(
            nn.Conv3d(in_channels, out_channels, kernel_size, bias=False,
                      padding=tuple(k // 2 for k in kernel_size), padding_mode=padding_mode),
            nn.BatchNorm3d(out_channels), nn.ReLU(inplace=True))
        self.out_channels = out_channels


@MODELS.register_module()
class ToyVideoNet(BaseModule):
    """A stack of registered layers on (N, C, T, H, W) clips, then global max pooling.

    Args:
        layers: module configs, built in order with ``in_channels`` set to the channels so far
            (a layer with an ``out_channels`` attribute changes them).
        in_channels: channels of the input frames.
        pooling: ``'global'`` pools over (T, H, W) to (N, C, 1, 1, 1) for a clip head;
            ``'spatial'`` pools each frame to (N*T, C, 1, 1) for a frame head such as TRN's.
        num_segments: T for (N*T, C, H, W) input (Recognizer2D).

    Trained from scratch, every BN starts at weight 1 and bias 0, including the output BNs that
    CP and Non-local blocks zero to start as identities (which matters only when fine-tuning).

    Shape:
        - Input: clips (N, in_channels, T, H, W), or frames (N*T, in_channels, H, W) with
          ``num_segments``.
        - Output: (N, C, 1, 1, 1) (``'global'``) or (N*T, C, 1, 1) (``'spatial'``), C = ``feat_dim``.

    Examples::

        >>> import cp_plugin.toy.mmaction  # registers the layers with mmaction2
        >>> net = ToyVideoNet([dict(type="ConvBNReLU3d", out_channels=16),
        ...                    dict(type="CPModule", k=4)])
        >>> net(torch.rand(2, 1, 4, 32, 32)).shape
        torch.Size([2, 16, 1, 1, 1])
    """

    def __init__(self, layers: Sequence[dict], in_channels: int = 1, pooling: str = "global",
                 num_segments: Optional[int] = None, init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        if pooling not in ("global", "spatial"):
            raise ValueError(f"pooling must be 'global' or 'spatial', got {pooling!r}")
        self.pooling = pooling
        self.num_segments = num_segments
        modules, channels = [], in_channels
        for layer in layers:
            modules.append(MODELS.build(dict(layer, in_channels=channels)))
            channels = getattr(modules[-1], "out_channels", channels)
        self.layers = nn.Sequential(*modules)
        self.feat_dim = channels
        self.init_weights()

    def init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            if not self.num_segments:
                raise ValueError("ToyVideoNet got frames (N*T, C, H, W); set num_segments=T")
            x = frames_to_video(x, self.num_segments)
        features = self.layers(x)
        if self.pooling == "global":
            return features.amax(dim=(2, 3, 4), keepdim=True)
        return video_to_frames(features.amax(dim=(3, 4), keepdim=True))

"""The CP (Correspondence Proposal) module of CPNet (Liu, Lee and Jin, CVPR 2019)."""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .knn import search_other_frames
from .layout import frames_per_clip, frames_to_video, video_to_frames
from .pair_mlp import PairMLP
from .validation import (argument_names, check_clips, check_finite, check_k, check_num_frames,
                         check_positive_int)


class CPModule(nn.Module):
    """Correspondence Proposal module: ``x + BN(W g)`` with ``g`` the max over k other-frame pairs.

    For every point i of a clip (N, C, T, H, W) it finds the ``k`` nearest points j in the other
    frames (squared L2 on the features), embeds every pair with a shared MLP of
    linear -> BN -> ReLU layers on ``[c_j - c_i, f_i, f_j]`` (c = (t/T, h/H, w/W)), takes the
    element-wise max over the k pairs and adds a 1x1 projection + BN back to ``x``. That BN starts
    at zero, so a fresh module is the identity.

    Args:
        in_channels: C of the input.
        k: neighbours per point.
        mlp_channels: widths of the embedding MLP; default (C'/4, C'/2), C' the searched channels.
        bottleneck_channels: if set, a 1x1x1 conv + BN (no activation) reduces the features to this
            many channels before the search (the authors' ResNet-101 variant uses C/8).
        shrink: integer spatial subsampling before the search (the authors use 2 in res3); the
            result is resized back bilinearly.
        num_frames: T for (N*T, C, H, W) inputs when the caller does not pass it (TSN-style 2D
            backbones).
        knn_chunk_size: queries per chunk in the neighbour search (None: sized from a memory cap).
        checkpoint_pairs: keep no (points x k) pair tensor for backward and recompute the pairs
            there instead: less memory, more time (see benchmarks/NOTES.md).
        device, dtype: where and in which dtype to create the parameters, as in ``torch.nn``.

    Shape:
        - Input: (N, C, T, H, W) with T >= 2, or (N*T, C, H, W) clip-major frames given
          ``num_clips`` or ``num_frames`` (in ``forward`` or at construction).
        - Output: the same shape as the input.

    Examples::

        >>> cp = CPModule(64, k=8)
        >>> x = torch.randn(2, 64, 8, 14, 14)
        >>> torch.equal(cp(x), x)  # the output BN starts at zero: a fresh module is the identity
        True
        >>> frames = x.transpose(1, 2).flatten(0, 1)  # (16, 64, 14, 14), as a 2D backbone has them
        >>> cp(frames, num_clips=2).shape
        torch.Size([16, 64, 14, 14])
    """

    #: Fewest frames a clip needs: the neighbours come from the *other* frames.
    min_frames = 2

    def __init__(self, in_channels: int, k: int = 8, mlp_channels: Optional[Sequence[int]] = None,
                 bottleneck_channels: Optional[int] = None, shrink: int = 1,
                 num_frames: Optional[int] = None, knn_chunk_size: Optional[int] = None,
                 checkpoint_pairs: bool = False, device=None, dtype=None) -> None:
        super().__init__()
        factory = dict(device=device, dtype=dtype)
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.k = check_positive_int("k", k)
        self.shrink = check_positive_int("shrink", shrink)
        self.num_frames = None if num_frames is None else check_num_frames(num_frames)
        self.knn_chunk_size = (None if knn_chunk_size is None
                               else check_positive_int("knn_chunk_size", knn_chunk_size))

        if bottleneck_channels is None:
            self.bottleneck = None
            search_channels = in_channels
        else:
            search_channels = check_positive_int("bottleneck_channels", bottleneck_channels)
            self.bottleneck = nn.Sequential(
                nn.Conv3d(in_channels, search_channels, 1, bias=False, **factory),
                nn.BatchNorm3d(search_channels, **factory))
        self.search_channels = search_channels

        if mlp_channels is None:
            mlp_channels = (max(1, search_channels // 4), max(1, search_channels // 2))
        self.mlp = PairMLP(search_channels, mlp_channels, recompute=checkpoint_pairs, **factory)
        self.mlp_channels = self.mlp.channels
        self.out_proj = nn.Linear(mlp_channels[-1], in_channels, bias=False, **factory)
        self.out_norm = nn.BatchNorm1d(in_channels, **factory)
        self.reset_parameters()

    @property
    def checkpoint_pairs(self) -> bool:
        return self.mlp.recompute

    def reset_parameters(self) -> None:
        """He init for the linear layers; the output BN at zero so the module is the identity."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Conv3d)):
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            elif isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.reset_parameters()
        nn.init.zeros_(self.out_norm.weight)
        nn.init.zeros_(self.out_norm.bias)

    def extra_repr(self) -> str:
        parts = [f"in_channels={self.in_channels}", f"k={self.k}", f"mlp_channels={self.mlp_channels}"]
        if self.bottleneck is not None:
            parts.append(f"bottleneck_channels={self.search_channels}")
        if self.shrink != 1:
            parts.append(f"shrink={self.shrink}")
        if self.num_frames is not None:
            parts.append(f"num_frames={self.num_frames}")
        if self.checkpoint_pairs:
            parts.append("checkpoint_pairs=True")
        return ", ".join(parts)

    def forward(self, x: torch.Tensor, num_clips: Optional[int] = None,
                num_frames: Optional[int] = None) -> torch.Tensor:
        """(N, C, T, H, W) -> same; or (N*T, C, H, W) -> same given ``num_clips`` or ``num_frames``."""
        video = self.as_video(x, num_clips, num_frames)
        check_finite("x", x)
        delta = self.compute_delta(video)
        return x + (delta if x.dim() == 5 else video_to_frames(delta))

    def compute_delta(self, video: torch.Tensor) -> torch.Tensor:
        """The residual added to ``video`` (N, C, T, H, W); may be a strided view."""
        points, size = self.search_points(video)
        neighbours = search_other_frames(points, points.shape[1] // size[0], self.k,
                                         self.knn_chunk_size)
        return self._output(self.mlp(points, neighbours, size), size, video)

    def search_points(self, video: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int, int, int]]:
        """The points the neighbour search runs on: ``video`` (N, C, T, H, W) through the
        bottleneck and the shrink, as (N, P, C') with P = T*H'*W' frame-major, and (T, H', W')."""
        features = video if self.bottleneck is None else self._bottleneck(video)
        t, h, w = features.shape[2:]
        if self.shrink > 1:
            if h < self.shrink or w < self.shrink:
                raise ValueError(
                    f"shrink={self.shrink} needs feature maps of at least {self.shrink}x{self.shrink}, "
                    f"got {h}x{w}; use a smaller shrink for this block.")
            h, w = h // self.shrink, w // self.shrink
            # Nearest sampling with an integer factor keeps every shrink-th pixel, as the
            # authors' TF resize does for a factor of 2.
            features = F.interpolate(features, size=(t, h, w), mode="nearest")
        check_k(self.k, t, h * w)
        return features.flatten(2).transpose(1, 2), (t, h, w)

    def _bottleneck(self, video: torch.Tensor) -> torch.Tensor:
        # The 1x1x1 convolution as one bmm over (N, C, P): a fifth faster forward and backward
        # than Conv3d at the paper's res4 (C=1024 -> 128), same weights and state-dict keys.
        conv, norm = self.bottleneck
        n = video.shape[0]
        projected = torch.bmm(conv.weight.flatten(1).expand(n, -1, -1), video.flatten(2))
        return norm(projected.view(n, -1, *video.shape[2:]))

    def _output(self, pooled: torch.Tensor, size: Tuple[int, int, int],
                video: torch.Tensor) -> torch.Tensor:
        """Project the pooled (N, P, C_last) embedding back to a (N, C, T, H, W) residual."""
        # Project straight into the backbone's channels-first layout, so the residual add and BN
        # run on contiguous (N, C, P) tensors. bmm with the weight expanded over the clips:
        # matmul(weight, batch) computes the transpose and copies it (12 of 85 ms at paper res4).
        weight = self.out_proj.weight.expand(pooled.shape[0], -1, -1)
        delta = self.out_norm(torch.bmm(weight, pooled.transpose(1, 2)))
        delta = delta.unflatten(2, size)
        if self.shrink > 1:
            # Frames are resized alone (T is unchanged): bilinear on (N, C*T, H', W') computes
            # what trilinear would, at about half the cost.
            n, c, t = delta.shape[:3]
            delta = F.interpolate(delta.flatten(1, 2), size=video.shape[3:], mode="bilinear",
                                  align_corners=False).unflatten(1, (c, t))
        return delta

    def as_video(self, x: torch.Tensor, num_clips: Optional[int] = None,
                 num_frames: Optional[int] = None) -> torch.Tensor:
        """``x`` checked and viewed as (N, C, T, H, W) (see ``forward`` for the arguments)."""
        owner = type(self).__name__  # CPNeck's errors name CPNeck
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{owner}: x must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() not in (4, 5):
            raise ValueError(
                f"{owner}: x must be (N, C, T, H, W), or (N*T, C, H, W) with num_clips or "
                f"num_frames; got {x.dim()} dims {tuple(x.shape)}")
        fix = (f"build it with in_channels={x.shape[1]} or place it after a layer with "
               f"{self.in_channels} channels")
        if x.dim() == 4:
            if x.shape[1] != self.in_channels:
                raise ValueError(f"{owner}: x of shape {tuple(x.shape)} has {x.shape[1]} channels, "
                                 f"{owner} takes {self.in_channels}; {fix}")
            return frames_to_video(x, self._frames_per_clip(x.shape[0], num_clips, num_frames))
        check_clips(x, "x", owner, self.in_channels, channels_fix=fix)
        check_num_frames(x.shape[2])
        return x

    def _frames_per_clip(self, batch: int, num_clips: Optional[int],
                         num_frames: Optional[int]) -> int:
        if num_clips is None and num_frames is None:
            num_frames = self.num_frames
        if num_clips is None and num_frames is None:
            raise ValueError(
                "a (N*T, C, H, W) input needs num_clips or num_frames (forward arguments, or "
                "num_frames at construction) to split the batch into clips; or pass (N, C, T, H, W).")
        return check_num_frames(frames_per_clip(batch, num_clips=num_clips, num_frames=num_frames))


#: CPModule's options as configs give them (``cp_cfg``, ``insert_cp``): every argument but
#: ``in_channels`` (set by the placement) and ``device``/``dtype`` (those of the model).
CP_OPTIONS = tuple(name for name in argument_names(CPModule)
                   if name not in ("in_channels", "device", "dtype"))

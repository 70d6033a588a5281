"""ARTNet baseline (Wang, Li, Li and Van Gool, CVPR 2018) in plain PyTorch.

The layer order follows the authors' released Caffe model (``wanglimin/ARTNet``,
``models/112_artnet_resnet_18_{train_val,deploy}.prototxt``), not the paper's figure:

* :class:`SMARTBlock` -- a 2D "appearance" conv and a 3D "relation" conv whose responses are
  squared and averaged over adjacent channel pairs, concatenated, ReLU'd and reduced by a 1x1x1 conv.
* :class:`ARTNetResNet18` -- the deep ARTNet-ResNet18 (SMART as conv1 and as the second conv
  of every unit of res2-res4; res5 plain C3D), returning the res5 feature map for a separate head.

Layout is PyTorch's (N, C, T, H, W); every kernel and stride tuple is (T, H, W).
"""
from __future__ import annotations

import math
from typing import Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from ..validation import check_positive_int

__all__ = ["SMARTBlock", "ARTNetResNet18", "cross_channel_pool", "caffe_xavier_init_"]

Triple = Tuple[int, int, int]


def _check_odd(name: str, value) -> int:
    check_positive_int(name, value)
    if value % 2 == 0:
        raise ValueError(f"{name} must be odd so that 'same' padding keeps both SMART branches "
                         f"aligned, got {value}")
    return value


def _triple(name: str, value: Union[int, Tuple[int, int, int]]) -> Triple:
    """An int or a (T, H, W) triple of positive ints, as a triple."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,) * 3
    if not isinstance(value, (tuple, list)) or len(value) != 3:
        raise TypeError(f"{name} must be an int or a (T, H, W) triple of ints, got {value!r}")
    return tuple(check_positive_int(f"{name}[{i}]", v) for i, v in enumerate(value))


def _conv(in_channels: int, out_channels: int, kernel: Triple, stride=1,
          padding_mode: str = "zeros", **factory) -> nn.Conv3d:
    """Bias-free Conv3d with 'same' padding (k // 2); every conv here is followed by a BN."""
    return nn.Conv3d(in_channels, out_channels, kernel, stride=stride,
                     padding=tuple(k // 2 for k in kernel), bias=False, padding_mode=padding_mode,
                     **factory)


def _check_video(x: torch.Tensor, channels: int, who: str) -> None:
    if x.dim() != 5 or x.shape[1] != channels:
        raise ValueError(f"{who} expects a (N, {channels}, T, H, W) tensor, got shape {tuple(x.shape)}")


def cross_channel_pool(r: torch.Tensor) -> torch.Tensor:
    """Average of squares over adjacent channel pairs: out[:, i] = (r[:, 2i]^2 + r[:, 2i+1]^2) / 2.

    This is the prototxt's frozen grouped 1x1x1 conv (C/2 groups, weights 0.5, lr 0) on the
    squared responses; being fixed it is written as a reshape instead of a parameter.
    """
    if r.shape[1] % 2:
        raise ValueError(f"cross_channel_pool needs an even channel count, got {r.shape[1]}")
    return r.pow(2).unflatten(1, (r.shape[1] // 2, 2)).mean(2)


@torch.no_grad()
def caffe_xavier_init_(module: nn.Module) -> nn.Module:
    """The released model's init: Caffe ``xavier`` convs, BN scale 1 / shift 0.

    Caffe's xavier filler is U(-a, a) with a = sqrt(3 / fan_in), i.e. variance 1 / fan_in
    (PyTorch's default conv init has variance 1 / (3 fan_in)); conv biases, if any, start at 0.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv3d):
            fan_in = m.weight[0].numel()  # in_channels / groups * kernel volume
            bound = math.sqrt(3.0 / fan_in)
            m.weight.uniform_(-bound, bound)
            if m.bias is not None:
                m.bias.zero_()
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return module


class SMARTBlock(nn.Module):
    """SMART block: appearance (2D conv) and relation (3D conv + square + pair pooling) branches.

    ::

        a = BN(conv_{1 x kS x kS}(x))                                  C channels
        r = BN(cross_channel_pool(BN(conv_{kT x kS x kS}(x))))         C/2 channels
        y = conv_{1x1x1}(ReLU(concat[a, r]))                           1.5C -> C
        y = ReLU(BN(y))  only if stem=True

    Inside an ARTNet residual unit (``stem=False``) the reduction output is added to the shortcut
    un-normalised; the BN + ReLU then act on the sum (see :class:`ARTNetResNet18`).

    Args:
        in_channels: Cin of the (N, Cin, T, H, W) input.
        out_channels: C; must be even, because the relation branch pools channel pairs.
        spatial_kernel: kS of both branches (odd).
        temporal_kernel: kT of the relation branch (odd). ``1`` gives the CPNet toy
            "SMART 3x3x1" (H x W x T notation), whose relation branch sees one frame at a time.
        stride: int or (T, H, W) stride of both branch convs.
        stem: add BN + ReLU after the reduction (the block used as a network's first layer).
        padding_mode: padding of both branch convs (``nn.Conv3d``'s; the toy uses 'circular').
        device, dtype: where and in which dtype to create the parameters, as in ``torch.nn``.

    Shape:
        - Input: (N, in_channels, T, H, W).
        - Output: (N, out_channels, T', H', W'), each of T, H, W divided by its stride (rounded up).

    Examples::

        >>> block = SMARTBlock(3, 64, spatial_kernel=7, stride=2)
        >>> block(torch.randn(1, 3, 8, 32, 32)).shape
        torch.Size([1, 64, 4, 16, 16])
    """

    def __init__(self, in_channels: int, out_channels: int, spatial_kernel: int = 3,
                 temporal_kernel: int = 3, stride: Union[int, Triple] = (1, 1, 1),
                 stem: bool = False, padding_mode: str = "zeros", device=None, dtype=None) -> None:
        super().__init__()
        factory = dict(device=device, dtype=dtype)
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.out_channels = check_positive_int("out_channels", out_channels)
        if out_channels % 2:
            raise ValueError(f"out_channels must be even: the relation branch averages channel "
                             f"pairs into out_channels / 2 channels, got {out_channels}")
        self.spatial_kernel = _check_odd("spatial_kernel", spatial_kernel)
        self.temporal_kernel = _check_odd("temporal_kernel", temporal_kernel)
        self.stride = _triple("stride", stride)
        if not isinstance(stem, bool):
            raise TypeError(f"stem must be a bool, got {type(stem).__name__} ({stem!r})")
        self.stem = stem
        self.relation_channels = out_channels // 2

        c, ks = out_channels, spatial_kernel
        self.appearance_conv = _conv(in_channels, c, (1, ks, ks), self.stride, padding_mode,
                                     **factory)
        self.appearance_bn = nn.BatchNorm3d(c, **factory)
        self.relation_conv = _conv(in_channels, c, (temporal_kernel, ks, ks), self.stride,
                                   padding_mode, **factory)
        self.relation_bn = nn.BatchNorm3d(c, **factory)
        self.pool_bn = nn.BatchNorm3d(self.relation_channels, **factory)
        self.reduce = _conv(c + self.relation_channels, c, (1, 1, 1), **factory)
        self.out = (nn.Sequential(nn.BatchNorm3d(c, **factory), nn.ReLU(inplace=True)) if stem
                    else nn.Identity())
        caffe_xavier_init_(self)

    def appearance(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, T', H', W') appearance features (no ReLU yet)."""
        return self.appearance_bn(self.appearance_conv(x))

    def relation(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C/2, T', H', W') relation features (no ReLU yet)."""
        return self.pool_bn(cross_channel_pool(self.relation_bn(self.relation_conv(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_video(x, self.in_channels, type(self).__name__)
        # Appearance first: the prototxt's concat order, which fixes the reduction weights' layout.
        y = F.relu(torch.cat([self.appearance(x), self.relation(x)], dim=1))
        return self.out(self.reduce(y))

    def init_weights(self) -> None:
        """Caffe-xavier convs, BN weight 1 / bias 0 (see :func:`caffe_xavier_init_`)."""
        caffe_xavier_init_(self)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, spatial_kernel={self.spatial_kernel}, "
                f"temporal_kernel={self.temporal_kernel}, stride={self.stride}, stem={self.stem}, "
                f"relation_channels={self.relation_channels}")


class _ResidualUnit(nn.Module):
    """One ARTNet/C3D-ResNet18 unit, "BN after the sum" style: ``x + f(ReLU(BN(x)))``.

    The stream ``x`` is never normalised itself: each unit starts with the BN + ReLU of the
    previous sum (``pre``), and a projection shortcut reads that activated input -- a
    3x3x3 strided conv without BN, as in the prototxt -- while an identity shortcut adds the raw x.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, smart: bool,
                 **factory) -> None:
        super().__init__()
        self.pre = nn.Sequential(nn.BatchNorm3d(in_channels, **factory), nn.ReLU(inplace=True))
        self.conv1 = nn.Sequential(_conv(in_channels, out_channels, (3, 3, 3), stride, **factory),
                                   nn.BatchNorm3d(out_channels, **factory), nn.ReLU(inplace=True))
        self.conv2 = (SMARTBlock(out_channels, out_channels, 3, 3, **factory) if smart
                      else _conv(out_channels, out_channels, (3, 3, 3), **factory))
        self.shortcut = (_conv(in_channels, out_channels, (3, 3, 3), stride, **factory)
                         if stride != 1 or in_channels != out_channels else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pre(x)
        shortcut = x if self.shortcut is None else self.shortcut(y)
        return shortcut + self.conv2(self.conv1(y))


class ARTNetResNet18(nn.Module):
    """ARTNet-ResNet18, deep variant: SMART in conv1 and res2-res4, plain C3D units in res5.

    =======  ===============================================================  =============
    stage    layers (T x H x W kernels, ``base_channels`` = 64)               out, 16x112^2
    =======  ===============================================================  =============
    stem     SMART(3 -> 64, appearance 1x7x7, relation 3x7x7, stride 2)       64 x 8x56x56
    res2     2 x [3x3x3 conv, SMART 3x3x3], identity shortcuts                64 x 8x56x56
    res3     2 x [3x3x3 conv, SMART 3x3x3], first: stride 2 + 3x3x3 proj.    128 x 4x28x28
    res4     same as res3                                                    256 x 2x14x14
    res5     2 x [3x3x3 conv, 3x3x3 conv], first: stride 2 + 3x3x3 proj.     512 x 1x7x7
    =======  ===============================================================  =============

    No max-pool and every stride is (2, 2, 2), so each of T, H, W shrinks to ceil(size / 16)
    (16 or 8 frames -> T' = 1, 32 -> 2). The stem is a non-stem SMART block: its BN + ReLU is
    the ``pre`` of res2's first unit, because in the prototxt that unit's identity shortcut adds
    the *un-normalised* stem output. The last sum gets a BN + ReLU; pooling, dropout (0.2) and
    the fc belong to the head.

    The prototxt gives the res3-res5 convs zero-initialised biases; every one of them reaches a
    BN (directly, or through the sum) before any non-linearity, which cancels a constant
    per-channel shift, so they are left out (6,016 parameters for ``base_channels=64``).

    Args:
        in_channels: input channels (3 for RGB).
        base_channels: width of res2 (64); doubled per stage, so it must be even.
        device, dtype: where and in which dtype to create the parameters, as in ``torch.nn``.

    Shape:
        - Input: (N, in_channels, T, H, W) clips.
        - Output: (N, 8 * base_channels, ceil(T / 16), ceil(H / 16), ceil(W / 16)).

    Examples::

        >>> net = ARTNetResNet18(base_channels=8)
        >>> net(torch.randn(1, 3, 16, 64, 64)).shape
        torch.Size([1, 64, 1, 4, 4])
    """

    def __init__(self, in_channels: int = 3, base_channels: int = 64, device=None,
                 dtype=None) -> None:
        super().__init__()
        factory = dict(device=device, dtype=dtype)
        self.in_channels = check_positive_int("in_channels", in_channels)
        check_positive_int("base_channels", base_channels)
        if base_channels % 2:
            raise ValueError(f"base_channels must be even (SMART pools channel pairs), got {base_channels}")
        widths = [base_channels * 2 ** i for i in range(4)]
        self.feat_dim = widths[-1]

        self.stem = SMARTBlock(in_channels, widths[0], spatial_kernel=7, temporal_kernel=3, stride=2,
                               **factory)
        self.res2 = self._stage(widths[0], widths[0], stride=1, smart=True, **factory)
        self.res3 = self._stage(widths[0], widths[1], stride=2, smart=True, **factory)
        self.res4 = self._stage(widths[1], widths[2], stride=2, smart=True, **factory)
        self.res5 = self._stage(widths[2], widths[3], stride=2, smart=False, **factory)
        self.final = nn.Sequential(nn.BatchNorm3d(widths[3], **factory), nn.ReLU(inplace=True))
        self.init_weights()

    @staticmethod
    def _stage(in_channels: int, out_channels: int, stride: int, smart: bool,
               **factory) -> nn.Sequential:
        return nn.Sequential(_ResidualUnit(in_channels, out_channels, stride, smart, **factory),
                             _ResidualUnit(out_channels, out_channels, 1, smart, **factory))

    def init_weights(self) -> None:
        """Caffe-xavier convs (variance 1 / fan_in), BN weight 1 / bias 0 (see :func:`caffe_xavier_init_`)."""
        caffe_xavier_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_channels, T, H, W) clip -> (N, feat_dim, T', H', W') feature map."""
        _check_video(x, self.in_channels, type(self).__name__)
        x = self.stem(x)
        for stage in (self.res2, self.res3, self.res4, self.res5):
            x = stage(x)
        return self.final(x)

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, feat_dim={self.feat_dim}"

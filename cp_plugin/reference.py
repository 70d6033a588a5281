"""Plain, obviously-correct CP maths: the oracle for tests and the baseline for benchmarks.

Written from the paper's equations and sharing no code with :class:`cp_plugin.CPModule`: every
step is spelled out here the slow way (the full P x P score matrix with the own frame masked,
the MLP on the concatenated pair input [c_j - c_i, f_i, f_j] for every pair, the max over k).
Its parameters are named as CPModule's, so state dicts load into either. Use
:class:`cp_plugin.CPModule` for real work.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .validation import check_points

__all__ = ["other_frame_knn", "point_coordinates", "ReferenceCPModule"]


def other_frame_knn(points: torch.Tensor, num_frames: int, k: int) -> torch.Tensor:
    """Same contract as :func:`cp_plugin.other_frame_knn`, by brute force."""
    points_per_frame = check_points(points, num_frames, k)
    with torch.no_grad():
        norms = points.pow(2).sum(-1)
        scores = 2 * points @ points.transpose(1, 2) - norms[:, :, None] - norms[:, None, :]
        frame_of = torch.arange(points.shape[1], device=points.device) // points_per_frame
        scores = scores.masked_fill(frame_of[:, None] == frame_of[None, :], float("-inf"))
        return scores.topk(k, dim=-1).indices  # largest score = smallest distance


def point_coordinates(num_frames: int, height: int, width: int, dtype=torch.float32,
                      device=None) -> torch.Tensor:
    """(T*H*W, 3): point p = (t*H + h)*W + w sits at (t/T, h/H, w/W) (the paper's locations)."""
    rows = [(t / num_frames, h / height, w / width)
            for t in range(num_frames) for h in range(height) for w in range(width)]
    return torch.tensor(rows, dtype=dtype, device=device)


def nearest_rows(size: int, new_size: int) -> list:
    """Rows that nearest-neighbour resizing ``size`` -> ``new_size`` keeps: floor(i * size / new)."""
    return [i * size // new_size for i in range(new_size)]


class ReferenceCPModule(nn.Module):
    """CP module, step by step: ``x + BN(W max_k MLP([c_j - c_i, f_i, f_j]))``.

    Takes :class:`cp_plugin.CPModule`'s arguments; those that only choose how the fast path
    computes (``knn_chunk_size``, ``checkpoint_pairs``, ``num_frames``) are accepted and ignored.

    Shape:
        - Input: clips (N, C, T, H, W) only, T >= 2.
        - Output: the same shape.

    Examples::

        >>> ref = ReferenceCPModule(16, k=4)
        >>> ref(torch.randn(1, 16, 3, 4, 4)).shape
        torch.Size([1, 16, 3, 4, 4])
    """

    def __init__(self, in_channels: int, k: int = 8, mlp_channels: Optional[Sequence[int]] = None,
                 bottleneck_channels: Optional[int] = None, shrink: int = 1, device=None,
                 dtype=None, **fast_path_options) -> None:
        super().__init__()
        self.k, self.shrink = k, shrink
        factory = dict(device=device, dtype=dtype)
        searched = bottleneck_channels or in_channels
        self.bottleneck = None if bottleneck_channels is None else nn.Sequential(
            nn.Conv3d(in_channels, searched, 1, bias=False, **factory),
            nn.BatchNorm3d(searched, **factory))
        widths = [3 + 2 * searched, *(mlp_channels or (max(1, searched // 4), max(1, searched // 2)))]
        self.mlp = nn.ModuleList(
            nn.Sequential(nn.Linear(a, b, bias=False, **factory), nn.BatchNorm1d(b, **factory),
                          nn.ReLU())
            for a, b in zip(widths[:-1], widths[1:]))
        self.out_proj = nn.Linear(widths[-1], in_channels, bias=False, **factory)
        self.out_norm = nn.BatchNorm1d(in_channels, **factory)
        nn.init.zeros_(self.out_norm.weight)

    def extra_repr(self) -> str:
        return f"k={self.k}, shrink={self.shrink}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, h, w = x.shape
        features = x if self.bottleneck is None else self.bottleneck(x)
        if self.shrink > 1:  # nearest sampling: keep rows and columns floor(i * H / H')
            small_h, small_w = h // self.shrink, w // self.shrink
            features = features[:, :, :, nearest_rows(h, small_h)][..., nearest_rows(w, small_w)]
        grid = features.shape[2:]
        points = features.flatten(2).transpose(1, 2)  # (N, P, C'), frame-major
        neighbours = other_frame_knn(points, t, self.k)  # (N, P, k)

        # Every pair (i, j): [c_j - c_i, f_i, f_j] through the MLP; BN statistics over all pairs.
        coords = point_coordinates(*grid, dtype=x.dtype, device=x.device)
        batch = torch.arange(n, device=x.device)[:, None, None]
        centre = points[:, :, None, :].expand(-1, -1, self.k, -1)
        pairs = torch.cat([coords[neighbours] - coords[:, None, :], centre,
                           points[batch, neighbours]], dim=-1)  # (N, P, k, 3 + 2C')
        for linear, norm, relu in self.mlp:
            out = linear(pairs)
            pairs = relu(norm(out.reshape(-1, out.shape[-1])).view(out.shape))
        pooled = pairs.amax(dim=2)  # (N, P, C_last): max over the k pairs

        delta = self.out_norm(self.out_proj(pooled).reshape(-1, c)).view(n, *grid, c)
        delta = delta.permute(0, 4, 1, 2, 3)  # (N, C, T, H', W')
        if self.shrink > 1:  # back to H x W, each frame on its own (bilinear)
            delta = F.interpolate(delta.transpose(1, 2).reshape(n * t, c, *grid[1:]), size=(h, w),
                                  mode="bilinear", align_corners=False)
            delta = delta.view(n, t, c, h, w).transpose(1, 2)
        return x + delta

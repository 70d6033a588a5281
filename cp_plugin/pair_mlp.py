"""CP's pair MLP: the shared layers that embed every (point, proposal) pair, max-pooled over k.

:class:`PairMLP` owns the layers and is the only code that knows their layout; how the pairs
are computed (whole tensors, or chunks recomputed in backward) is :mod:`.pair_embedding`'s.
"""
from __future__ import annotations

from typing import Dict, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .layout import COORDINATE_DIMS, frame_coordinates
from .pair_embedding import embed_pairs_max
from .validation import check_positive_int

__all__ = ["PairMLP"]


class PairMLP(nn.ModuleList):
    """``max_j MLP([c_j - c_i, f_i, f_j])`` over each point's k proposals j.

    Layer l is ``Sequential(Linear(bias=False), BatchNorm1d, ReLU)``, so a CP module's state
    dict holds ``mlp.{l}.0.weight`` and ``mlp.{l}.1.*``. c = (t/T, h/H, w/W) is a point's place
    on the search grid. The first layer is applied per point, not per pair (its weight splits
    into the coordinate, centre and proposal columns), and only the layers above it run on the
    (points x k) pairs: as whole tensors where they fit the device's budget (a GPU's usual case),
    else chunk by chunk (:func:`cp_plugin.pair_embedding.embed_pairs_max`).

    Args:
        in_channels: C of the searched features f.
        channels: the layers' widths.
        recompute: keep no (points x k) pair tensor for backward; recompute the pairs there.
        device, dtype: where and in which dtype to create the parameters, as in ``torch.nn``.

    Shape:
        - points: (N, P, C), P = T*H*W points in frame-major order.
        - neighbours: (N, P, k) int64 indices into each clip's points.
        - Output: (N, P, channels[-1]).

    Examples::

        >>> mlp = PairMLP(16, (8, 32))
        >>> points = torch.randn(2, 3 * 4 * 4, 16)
        >>> neighbours = torch.randint(0, 48, (2, 48, 5))
        >>> mlp(points, neighbours, (3, 4, 4)).shape
        torch.Size([2, 48, 32])
    """

    def __init__(self, in_channels: int, channels: Sequence[int], recompute: bool = False,
                 device=None, dtype=None) -> None:
        channels = tuple(channels)
        if not channels:
            raise ValueError("mlp_channels must name at least one layer width, e.g. (C // 4, C // 2)")
        for i, width in enumerate(channels):
            check_positive_int(f"mlp_channels[{i}]", width)
        widths = (COORDINATE_DIMS + 2 * check_positive_int("in_channels", in_channels),) + channels
        super().__init__(
            nn.Sequential(nn.Linear(c_in, c_out, bias=False, device=device, dtype=dtype),
                          nn.BatchNorm1d(c_out, device=device, dtype=dtype), nn.ReLU())
            for c_in, c_out in zip(widths[:-1], widths[1:]))
        self.in_channels, self.channels, self.recompute = in_channels, channels, bool(recompute)

    def forward(self, points: torch.Tensor, neighbours: torch.Tensor,
                grid: Tuple[int, int, int]) -> torch.Tensor:
        n, num_points, _ = points.shape
        k = neighbours.shape[-1]
        # W [c_j - c_i, f_i, f_j] = (W_f f_i - W_c c_i) + (W_p f_j + W_c c_j): both halves once
        # per point, and only the second one gathered per pair.
        w_coord, w_centre, w_proposal = self[0][0].weight.split(
            [COORDINATE_DIMS, self.in_channels, self.in_channels], dim=1)
        coord_term = F.linear(self._coordinates(points, grid), w_coord)
        centre = F.linear(points, w_centre) - coord_term
        proposal = F.linear(points, w_proposal) + coord_term
        # Rows of the flattened (N*P, C1) proposal term that pair with each point.
        offsets = torch.arange(n, device=points.device).view(n, 1, 1) * num_points
        pooled = embed_pairs_max(
            centre.reshape(n * num_points, -1), proposal.reshape(n * num_points, -1),
            (neighbours + offsets).view(n * num_points, k),
            [None] + [linear.weight for linear, _, _ in list(self)[1:]],
            [norm for _, norm, _ in self], recompute=self.recompute)
        return pooled.view(n, num_points, -1)

    def embed_pairs(self, points: torch.Tensor, neighbours: torch.Tensor,
                    grid: Tuple[int, int, int]) -> torch.Tensor:
        """Every pair's embedding before the max, (N, P, k, channels[-1]), built pair by pair
        as the paper writes it (for inspection: memory O(N P k C))."""
        coords = self._coordinates(points, grid)
        batch = torch.arange(points.shape[0], device=points.device)[:, None, None]
        pairs = torch.cat([coords[neighbours] - coords[:, None, :],
                           points[:, :, None, :].expand(-1, -1, neighbours.shape[-1], -1),
                           points[batch, neighbours]], dim=-1)
        for linear, norm, act in self:
            out = linear(pairs)
            pairs = act(norm(out.flatten(0, -2)).view(out.shape))
        return pairs

    def cost(self, num_clips: int, grid: Tuple[int, int, int], k: int) -> Dict[str, int]:
        """One forward's work on ``num_clips`` clips of ``grid`` (T, H, W) with ``k`` proposals
        per point: ``embedding`` MACs (the first layer's per-point halves, its coordinate term
        once per clip position, the later layers on every pair), ``norm`` multiply-adds of the
        BNs, ``gather`` (values copied per pair) and ``max`` (pair values compared)."""
        clip_points = grid[0] * grid[1] * grid[2]
        points = num_clips * clip_points
        widths = self.channels
        layers = zip(widths[:-1], widths[1:])
        return dict(
            embedding=2 * points * self.in_channels * widths[0]
            + clip_points * COORDINATE_DIMS * widths[0]
            + sum(points * k * c_in * c_out for c_in, c_out in layers),
            norm=points * k * sum(widths), gather=points * k * widths[0],
            max=points * k * widths[-1])

    @staticmethod
    def _coordinates(points: torch.Tensor, grid: Tuple[int, int, int]) -> torch.Tensor:
        return frame_coordinates(*grid, device=points.device, dtype=points.dtype)

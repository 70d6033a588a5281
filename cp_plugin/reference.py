"""Plain, obviously-correct CP maths: the oracle for tests and the baseline for benchmarks.

Nothing here is optimised; it is CPNet as the authors' Python code writes it (a naive port): the
neighbour search builds the full (P x P) score matrix ``2 q.p - |q|^2 - |p|^2`` with the own
frame masked, and the MLP runs on the concatenated pair input [c_j - c_i, f_i, f_j].
Use :class:`cp_plugin.CPModule` for real work.
"""
from __future__ import annotations

import torch
from torch import nn

from .cp_module import CPModule, frame_coordinates
from .validation import check_points

__all__ = ["other_frame_knn", "pair_embeddings", "ReferenceCPModule"]


def other_frame_knn(points: torch.Tensor, num_frames: int, k: int) -> torch.Tensor:
    """Same contract as :func:`cp_plugin.other_frame_knn`, by brute force."""
    points_per_frame = check_points(points, num_frames, k)
    with torch.no_grad():
        norms = points.pow(2).sum(-1)
        scores = 2 * points @ points.transpose(1, 2) - norms[:, :, None] - norms[:, None, :]
        frame_of = torch.arange(points.shape[1], device=points.device) // points_per_frame
        scores = scores.masked_fill(frame_of[:, None] == frame_of[None, :], float("-inf"))
        return scores.topk(k, dim=-1).indices  # largest score = smallest distance


def batch_norm_last(norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply a BatchNorm1d to a channels-last tensor of any rank (statistics over all but the last dim)."""
    return norm(x.reshape(-1, x.shape[-1])).view(x.shape)


def pair_embeddings(module: CPModule, points: torch.Tensor, size, neighbours: torch.Tensor
                    ) -> torch.Tensor:
    """The MLP's output for every (point, proposal) pair: (N, P, k, C_last).

    ``points`` (N, P, C') and ``size`` (T, H', W') as ``module._search_points`` returns them,
    ``neighbours`` (N, P, k) from the search.
    """
    n, num_points, channels = points.shape
    k = neighbours.shape[-1]
    coords = frame_coordinates(*size, device=points.device, dtype=points.dtype)
    batch = torch.arange(n, device=points.device)[:, None, None]
    centre = points[:, :, None, :].expand(n, num_points, k, channels)
    neighbour = points[batch, neighbours]
    offset = coords[neighbours] - coords[:, None, :]
    pairs = torch.cat([offset, centre, neighbour], dim=-1)  # (N, P, k, 3 + 2C')
    for linear, norm, act in module.mlp:
        pairs = act(batch_norm_last(norm, linear(pairs)))
    return pairs


class ReferenceCPModule(CPModule):
    """:class:`CPModule` with the plain forward: same parameters, so state dicts are interchangeable."""

    def compute_delta(self, video: torch.Tensor) -> torch.Tensor:
        points, size = self._search_points(video)
        neighbours = other_frame_knn(points, size[0], self.k)  # (N, P, k)
        pooled = pair_embeddings(self, points, size, neighbours).amax(dim=2)
        return self._output(pooled, size, video)

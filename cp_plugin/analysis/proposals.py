"""What a CP module proposes and what it keeps, for inspection (the paper's Figure 5).

For a point i0 the module proposes its k nearest other-frame points; the max over k then keeps,
per output channel of the embedding MLP, the one pair that is largest there. The proposals that
win at least one channel form A(i0) (the paper's equation 2); max pooling discards the rest.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import torch

from ..cp_module import CPModule
from ..knn import other_frame_knn
from ..validation import check_clips

__all__ = ["Proposals", "inspect_proposals"]


@dataclass
class Proposals:
    """One CP module's proposals on a batch of clips.

    Attributes:
        neighbours: (N, P, k) frame-major indices of each point's proposals on the search grid.
        kept: (N, P, k) True where the proposal is in A(i): it gives the maximum of at least one
            output channel whose maximum is positive (a channel that is zero for all k pairs
            carries nothing, and every pair would tie in it).
        change: (N, T, H, W) L1 norm over channels of the module's residual, at the input's
            resolution: how much the module changes each position's features.
        grid: (T, H', W') of the search (H', W' smaller than the input's with ``shrink``).
    """

    neighbours: torch.Tensor
    kept: torch.Tensor
    change: torch.Tensor
    grid: Tuple[int, int, int]

    def unravel(self, index: int) -> Tuple[int, int, int]:
        """(t, h, w) on the search grid of a frame-major point index."""
        _, height, width = self.grid
        return index // (height * width), index // width % height, index % width


@torch.no_grad()
def inspect_proposals(module: CPModule, video: torch.Tensor) -> Proposals:
    """Proposals, A(i) sets and feature change of ``module`` on ``video`` (N, C, T, H, W).

    The module is used as it is (call ``eval()`` first for a trained model's behaviour); the
    pair embeddings are computed pair by pair (:meth:`cp_plugin.pair_mlp.PairMLP.embed_pairs`), not by the fused path.
    """
    if not isinstance(module, CPModule):
        raise TypeError(f"module must be a CPModule, got {type(module).__name__}")
    check_clips(video, "video", "inspect_proposals", module.in_channels)
    points, grid = module.search_points(module.as_video(video))
    neighbours = other_frame_knn(points, grid[0], module.k)
    embeddings = module.mlp.embed_pairs(points, grid=grid, neighbours=neighbours)  # (N, P, k, C_last)
    best = embeddings.amax(dim=2, keepdim=True)
    kept = ((embeddings == best) & (best > 0)).any(-1)
    change = module.compute_delta(video).abs().sum(1)
    return Proposals(neighbours, kept, change, grid)

"""Exact k-nearest-neighbour search restricted to the other frames of a clip."""
from __future__ import annotations

from typing import Optional

import torch

from .validation import check_points, check_positive_int

#: Default cap on the elements of one chunk's distance matrix (N x chunk x P): 64 MiB in float32.
DEFAULT_CHUNK_ELEMENTS = 1 << 24


def other_frame_knn(points: torch.Tensor, num_frames: int, k: int,
                    chunk_size: Optional[int] = None) -> torch.Tensor:
    """Indices of the ``k`` nearest points in *other* frames, by squared L2 distance.

    Args:
        points: (N, P, C) features, P = T*H*W points in frame-major (t, h, w) order.
        num_frames: T; the points of frame t are ``P // T * t`` .. ``P // T * (t + 1) - 1``.
        k: neighbours per point, 1 <= k <= (T-1)*H*W. Frames may contribute 0..k each.
        chunk_size: queries handled at once; extra memory is O(N * chunk_size * P).
            ``None`` sizes chunks so that one distance matrix holds at most
            ``DEFAULT_CHUNK_ELEMENTS`` elements.

    Returns:
        int64 tensor (N, P, k), nearest first. No gradient flows through the selection.
    """
    points_per_frame = check_points(points, num_frames, k)
    if chunk_size is not None:
        check_positive_int("chunk_size", chunk_size)
    return search_other_frames(points, points_per_frame, k, chunk_size)


def search_other_frames(points: torch.Tensor, points_per_frame: int, k: int,
                        chunk_size: Optional[int] = None) -> torch.Tensor:
    """:func:`other_frame_knn` without argument checks, for callers that validated already."""
    n, num_points, _ = points.shape
    if chunk_size is None:
        chunk_size = max(1, DEFAULT_CHUNK_ELEMENTS // max(1, n * num_points))
    with torch.no_grad():
        # Half precision would blur the ranking: search in at least float32. Distances do not
        # change under translation, so centring first keeps the expansion below accurate for
        # features with a large common offset.
        pts = points.detach()
        if pts.dtype not in (torch.float32, torch.float64):
            pts = pts.float()
        pts = pts - pts.mean(dim=1, keepdim=True)
        # ||q - p||^2 = ||q||^2 + ||p||^2 - 2 q.p; ||q||^2 is constant per query and does
        # not change the ranking, so it is left out.
        sq_norms = pts.pow(2).sum(-1).unsqueeze(1)  # (N, 1, P)
        candidates_t = pts.transpose(1, 2)  # (N, C, P)
        frame_of = torch.arange(num_points, device=pts.device) // points_per_frame
        chunks = []
        for start in range(0, num_points, chunk_size):
            stop = min(start + chunk_size, num_points)
            scores = torch.baddbmm(sq_norms, pts[:, start:stop], candidates_t, alpha=-2.0)
            own_frame = frame_of[start:stop, None] == frame_of[None, :]  # (Q, P)
            scores.masked_fill_(own_frame, float("inf"))
            chunks.append(scores.topk(k, dim=-1, largest=False).indices)
        return torch.cat(chunks, dim=1) if len(chunks) > 1 else chunks[0]

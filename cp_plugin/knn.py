"""Exact k-nearest-neighbour search restricted to the other frames of a clip."""
from __future__ import annotations

from typing import Optional

import torch

from .device_paths import get_device_paths
from .tracing import exporting
from .validation import check_points, check_positive_int

#: Chunks never hold fewer queries than this (unless a frame has fewer points): with a large
#: batch the element cap alone gave chunks of ~10 queries, where per-call overhead dominates.
MIN_CHUNK_QUERIES = 32


def other_frame_knn(points: torch.Tensor, num_frames: int, k: int,
                    chunk_size: Optional[int] = None) -> torch.Tensor:
    """Indices of the ``k`` nearest points in *other* frames, by squared L2 distance.

    Args:
        points: (N, P, C) features, P = T*H*W points in frame-major (t, h, w) order.
        num_frames: T; the points of frame t are ``P // T * t`` .. ``P // T * (t + 1) - 1``.
        k: neighbours per point, 1 <= k <= (T-1)*H*W. Frames may contribute 0..k each.
        chunk_size: queries handled at once (chunks never span two frames); extra memory is
            O(N * chunk_size * P). ``None`` keeps one score matrix within the device's
            ``search_chunk_elements`` (:mod:`cp_plugin.device_paths`): whole clips (P x P, own
            frames masked) as many at once as fit where the device scores whole clips, else
            frames in chunks of at least ``MIN_CHUNK_QUERIES`` queries.

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
    if exporting():
        return search_whole_clip(points, points_per_frame, k)
    n, num_points, _ = points.shape
    hw = points_per_frame
    candidates_per_query = num_points - hw
    if chunk_size is None:
        clips_at_once = whole_clips_per_step(num_points, points.device)
        if clips_at_once:
            # Whole clips' score matrices fit: a few large kernels instead of a Python loop
            # over frames and chunks (on a GPU, where launches dominate at these sizes).
            return search_whole_clip(points, hw, k, clips_at_once)
        budget = get_device_paths(points.device).search_chunk_elements
        chunk_size = max(MIN_CHUNK_QUERIES, budget // max(1, n * candidates_per_query))
    # Half precision would blur the ranking: search in at least float32, and with autocast off,
    # which would otherwise run the matmul below in bfloat16 or float16. Distances do not change
    # under translation, so centring first keeps the expansion below accurate for features with
    # a large common offset.
    with torch.no_grad(), torch.autocast(points.device.type, enabled=False):
        pts = _centred(points)
        queries, keys = _expanded(pts)
        indices = torch.empty(n, num_points, k, dtype=torch.long, device=pts.device)
        for frame_start in range(0, num_points, hw):
            frame_stop = frame_start + hw
            # Only the other frames are candidates: no own-frame mask to build or skip.
            others = torch.cat([keys[:, :, :frame_start], keys[:, :, frame_stop:]], dim=2)
            for start in range(frame_start, frame_stop, chunk_size):
                stop = min(start + chunk_size, frame_stop)
                scores = torch.bmm(queries[:, start:stop], others)  # (N, Q, (T-1)HW)
                nearest = smallest_k(scores, k)
                # Candidates after the query's frame sit hw positions later in the clip.
                indices[:, start:stop] = nearest + (nearest >= frame_start) * hw
        return indices


def whole_clips_per_step(num_points: int, device: torch.device) -> int:
    """How many clips of ``num_points`` points one search step scores whole (own frames
    masked) within the chunk budget of ``device``; 0: clips are searched frame by frame."""
    paths = get_device_paths(device)
    if not paths.whole_clip_search:
        return 0
    return paths.search_chunk_elements // (num_points * num_points)


def _centred(points: torch.Tensor) -> torch.Tensor:
    pts = points.detach()
    if pts.dtype not in (torch.float32, torch.float64):
        pts = pts.float()
    return pts - pts.mean(dim=1, keepdim=True)


def _expanded(pts: torch.Tensor):
    """Queries (N, P, C + 1) and keys (N, C + 1, P) whose product ranks candidates as distances:
    ||q - p||^2 = ||q||^2 + (||p||^2 - 2 q.p), and ||q||^2 does not change a query's ranking,
    so queries [-2q, 1] against candidates [p, ||p||^2] give the rest in one matmul."""
    queries = torch.cat([pts * -2.0, torch.ones_like(pts[..., :1])], dim=-1)
    keys = torch.cat([pts, pts.pow(2).sum(-1, keepdim=True)], dim=-1)
    if pts.dtype == torch.float32 and float32_matmul_lowered(pts.device.type):
        queries, keys = _exact_in_bfloat16(queries, keys)
    # Keys stored (N, C + 1, P): bmm runs about a third faster on them than on a transpose.
    return queries, keys.transpose(1, 2).contiguous()


def float32_matmul_lowered(device_type: str) -> bool:
    """Whether float32 matmuls on ``device_type`` may round their operands to TF32 or bfloat16
    (``torch.set_float32_matmul_precision("high" or "medium")``, the backends' ``fp32_precision``,
    or CUDA's legacy ``allow_tf32``)."""
    backend = torch.backends.cuda if device_type == "cuda" else torch.backends.mkldnn
    precision = getattr(getattr(backend, "matmul", None), "fp32_precision", None)
    if precision is None:  # torch < 2.9 has the legacy switches only
        return (torch.get_float32_matmul_precision() != "highest"
                or (device_type == "cuda" and torch.backends.cuda.matmul.allow_tf32))
    # Read the new API: once a user has set it, the legacy getters raise.
    if precision == "none":  # the backend follows the global setting ("none" too by default)
        precision = torch.backends.fp32_precision
    return precision in ("tf32", "bf16")


# torch.compile reads it once, at trace time: the mark ``torch.compiler.assume_constant_result``
# sets, set here directly because that function imports torch._dynamo (a second) at our import.
float32_matmul_lowered._dynamo_marked_constant = True


def _exact_in_bfloat16(queries: torch.Tensor, keys: torch.Tensor):
    """Queries and keys (N, P, D) -> (N, P, 6D) whose product is theirs to float32 precision
    even where the matmul rounds its operands to bfloat16 or TF32.

    Each value splits into three bfloat16 numbers, x = x1 + x2 + x3 (to 2^-27 |x|); each part
    survives the operand rounding and the products of two parts are exact in float32, so
    [q1, q1, q2, q1, q2, q3] . [k1, k2, k1, k3, k2, k1] is q.k less the terms below 2^-24 |q||k|,
    summed in float32: one matmul over 6D channels, rounding as a float32 sum of 6D terms."""
    q1, q2, q3 = _bfloat16_parts(queries)
    k1, k2, k3 = _bfloat16_parts(keys)
    return (torch.cat([q1, q1, q2, q1, q2, q3], dim=-1),
            torch.cat([k1, k2, k1, k3, k2, k1], dim=-1))


def _bfloat16_parts(x: torch.Tensor):
    first = x.bfloat16().float()
    rest = x - first  # exact: the bits bfloat16 dropped
    second = rest.bfloat16().float()
    return first, second, (rest - second).bfloat16().float()


def search_whole_clip(points: torch.Tensor, points_per_frame: int, k: int,
                      clips_at_once: Optional[int] = None) -> torch.Tensor:
    """:func:`search_other_frames` as one (N, P, P) score matrix with each query's own frame
    masked out (or one per group of ``clips_at_once`` clips): no Python loop over frames or
    chunks, so a traced graph (torch.export, ONNX) keeps N, T, H and W symbolic and a GPU runs
    a few large kernels. Memory O(clips_at_once * P^2)."""
    with torch.no_grad(), torch.autocast(points.device.type, enabled=False):
        queries, keys = _expanded(_centred(points))
        num_frames = points.shape[1] // points_per_frame
        # Scores viewed (clips, T, HW, T, HW): the own frame's blocks are where the two frame
        # indices agree, an identity matrix broadcast over the rest.
        own_frame = torch.eye(num_frames, dtype=torch.bool, device=points.device)
        own_frame = own_frame.view(1, num_frames, 1, num_frames, 1)
        groups = zip(queries.split(clips_at_once), keys.split(clips_at_once)) \
            if clips_at_once else [(queries, keys)]
        nearest = []
        for q, c in groups:
            scores = torch.bmm(q, c).view(-1, num_frames, points_per_frame, num_frames,
                                          points_per_frame).masked_fill(own_frame, float("inf"))
            nearest.append(scores.flatten(3).flatten(1, 2)
                           .topk(k, dim=-1, largest=False).indices)
        return nearest[0] if len(nearest) == 1 else torch.cat(nearest)


#: Rows at least this long (in multiples of k) take :func:`smallest_k`'s two-stage path.
TWO_STAGE_MIN_RATIO = 256


def smallest_k(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k smallest entries along the last dim, smallest first (``topk``'s contract).

    Long rows are split into G = L / S groups of S strided entries (g, g + G, g + 2G, ...).
    The k smallest entries lie in the k groups with the smallest minima: a group holding one of
    them but not among those k would leave k groups with smaller minima, so k smaller entries.
    So a cheap element-wise min over S rows of G, a top-k over the G group minima and one over
    the S * k survivors replace the top-k over the whole row, which is several times slower.
    """
    length = scores.shape[-1]
    group_count = next((s for s in (8, 4, 2) if length % s == 0), 1)
    stride = length // group_count
    if group_count == 1 or stride < k or length < TWO_STAGE_MIN_RATIO * k:
        return scores.topk(k, dim=-1, largest=False).indices
    grouped = scores.unflatten(-1, (group_count, stride))  # entry s * stride + g
    best = grouped.amin(-2).topk(k, dim=-1, largest=False).indices  # (..., k) groups g
    members = grouped.gather(-1, best.unsqueeze(-2).expand(*best.shape[:-1], group_count, k))
    within = members.flatten(-2).topk(k, dim=-1, largest=False).indices  # s * k + slot
    return (within // k) * stride + best.gather(-1, within % k)

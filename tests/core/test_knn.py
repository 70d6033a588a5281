import itertools
import subprocess
import sys

import pytest
import torch

from cp_plugin import knn, other_frame_knn, reference
from cp_plugin.testing import search_rounding_bound


def brute_force_distances(points, num_frames):
    """(N, P, P) squared distances in float64 with the own frame at +inf."""
    p = points.double()
    d = (p[:, :, None] - p[:, None]).pow(2).sum(-1)
    frame = torch.arange(p.shape[1]) // (p.shape[1] // num_frames)
    return d.masked_fill(frame[:, None] == frame[None], float("inf"))


def assert_exact_knn(points, num_frames, k, indices, bfloat16_parts=False):
    n, num_points, _ = points.shape
    assert indices.dtype == torch.int64
    assert indices.shape == (n, num_points, k)
    frame = torch.arange(num_points) // (num_points // num_frames)
    assert not (frame[indices] == frame[None, :, None]).any(), "neighbour in the query's own frame"
    # Every point appears at most once per query.
    assert (indices.sort(-1).values.diff(dim=-1) != 0).all()
    distances = brute_force_distances(points, num_frames)
    chosen = distances.gather(2, indices).sort(-1).values
    expected = distances.topk(k, dim=-1, largest=False).values
    # Compare distances, not indices, so equal distances cannot make the test flaky; a float32
    # search may swap neighbours whose distances differ by less than its rounding.
    torch.testing.assert_close(chosen, expected, rtol=0,
                               atol=search_rounding_bound(points, bfloat16_parts=bfloat16_parts))


SIZES = list(itertools.product([1, 5, 14], [1, 5, 14]))


@pytest.mark.parametrize("path", ["whole-clip", "per-frame", "per-frame-two-stage"])
@pytest.mark.parametrize("n,t,size", list(itertools.product([1, 3], [2, 3, 8], SIZES)))
def test_matches_brute_force(monkeypatch, cpu_paths, n, t, size, path):
    # The budget picks the path: whole clips (in groups of one clip) or frames in chunks.
    h, w = size
    whole_clip = (t * h * w) ** 2
    cpu_paths(whole_clip_search=True,  # the GPU's choice, here
              search_chunk_elements=whole_clip if path == "whole-clip" else 1)
    if path == "per-frame-two-stage":  # smallest_k's grouped path wherever the row allows it
        monkeypatch.setattr(knn, "TWO_STAGE_MIN_RATIO", 1)
    gen = torch.Generator().manual_seed(n * 1000 + t * 100 + h)
    points = torch.randn(n, t * h * w, 6, generator=gen)
    for k in sorted({1, min(8, (t - 1) * h * w), (t - 1) * h * w}):
        assert_exact_knn(points, t, k, other_frame_knn(points, t, k))


@pytest.mark.parametrize("chunk_size", [1, 7, 64])
def test_chunked_equals_unchunked(chunk_size):
    points = torch.randn(3, 4 * 25, 8, generator=torch.Generator().manual_seed(0))
    # Each exact to its own rounding; indices are not compared, since another CPU's kernels
    # may round a near-tie the other way in one chunk shape and not in the other.
    assert_exact_knn(points, 4, 8, other_frame_knn(points, 4, 8, chunk_size=points.shape[1]))
    assert_exact_knn(points, 4, 8, other_frame_knn(points, 4, 8, chunk_size=chunk_size))
    assert_exact_knn(points, 4, 8, reference.other_frame_knn(points, 4, 8))


def test_default_chunk_never_builds_the_full_matrix(monkeypatch, cpu_paths):
    import cp_plugin.knn as knn

    seen = []
    real_bmm = torch.bmm

    def spy(*args, **kwargs):
        out = real_bmm(*args, **kwargs)
        seen.append(out.shape)
        return out

    cpu_paths(search_chunk_elements=1000)
    monkeypatch.setattr(knn, "MIN_CHUNK_QUERIES", 1)
    monkeypatch.setattr(knn.torch, "bmm", spy)
    points = torch.randn(2, 4 * 49, 4)
    indices = other_frame_knn(points, 4, 5)
    assert all(shape[0] * shape[1] * shape[2] <= 1000 for shape in seen)
    assert len(seen) > 1
    assert_exact_knn(points, 4, 5, indices)

    # The query floor wins over the element cap: 49 points per frame in chunks of 20, 20, 9.
    monkeypatch.setattr(knn, "MIN_CHUNK_QUERIES", 20)
    seen.clear()
    assert_exact_knn(points, 4, 5, other_frame_knn(points, 4, 5))
    assert [shape[1] for shape in seen] == [20, 20, 9] * 4


def test_no_gradient_and_low_precision_inputs():
    points = torch.randn(2, 3 * 16, 8, requires_grad=True)
    indices = other_frame_knn(points, 3, 4)
    assert not indices.requires_grad
    assert_exact_knn(points.detach(), 3, 4, indices)
    # bfloat16 points are searched in float32: the result is exact for the rounded values.
    rounded = points.detach().bfloat16()
    assert_exact_knn(rounded.float(), 3, 4, other_frame_knn(rounded, 3, 4))


def test_large_common_offset_keeps_exact_ranking():
    points = torch.randn(1, 3 * 25, 8, generator=torch.Generator().manual_seed(1)) + 1e4
    assert_exact_knn(points, 3, 6, other_frame_knn(points, 3, 6))


@pytest.mark.parametrize("search", [other_frame_knn, reference.other_frame_knn])
@pytest.mark.parametrize("args,error,match", [
    ((torch.randn(8, 4), 2, 1), ValueError, "points must have shape"),
    ((torch.randn(1, 8, 4), 1, 1), ValueError, "num_frames .* must be >= 2"),
    ((torch.randn(1, 9, 4), 2, 1), ValueError, "does not divide into num_frames=2"),
    ((torch.randn(1, 8, 4), 2, 5), ValueError, "use k <= 4"),
    ((torch.randn(1, 8, 4), 2, 0), ValueError, "k must be >= 1"),
    ((torch.randn(1, 8, 4), 2, 1.5), TypeError, "k must be an int"),
    ((torch.full((1, 8, 4), float("nan")), 2, 1), ValueError, "points contains 32 non-finite"),
])
def test_bad_arguments(search, args, error, match):
    with pytest.raises(error, match=match):
        search(*args)


@pytest.mark.parametrize("length", [24, 96, 1000, 3072])
@pytest.mark.parametrize("k", [1, 3, 8])
@pytest.mark.parametrize("ties", [False, True])
def test_smallest_k_agrees_with_topk(monkeypatch, length, k, ties):
    monkeypatch.setattr(knn, "TWO_STAGE_MIN_RATIO", 1)
    gen = torch.Generator().manual_seed(length + k)
    scores = torch.randn(3, 5, length, generator=gen)
    if ties:  # few distinct values: many equal candidates around the k-th
        scores = (scores * 2).round()
    indices = knn.smallest_k(scores, k)
    expected = scores.topk(k, dim=-1, largest=False).values
    assert torch.equal(scores.gather(-1, indices), expected)  # same values, smallest first
    assert (indices.sort(-1).values.diff(dim=-1) != 0).all()  # no entry twice


@pytest.mark.parametrize("clips_at_once", [None, 1, 2])
@pytest.mark.parametrize("case", ["random", "ties", "offset"])
@pytest.mark.parametrize("n,t,hw", [(1, 2, 1), (2, 3, 25), (3, 8, 9)])
def test_whole_clip_search_matches_brute_force(case, n, t, hw, clips_at_once):
    """The loop-free search: one masked (N, P, P) score matrix (what torch.export traces), or
    one per group of clips (what a budget that holds whole clips takes)."""
    gen = torch.Generator().manual_seed(n * 100 + t * 10 + hw)
    points = torch.randn(n, t * hw, 6, generator=gen)
    if case == "ties":  # few distinct values: many equal distances around the k-th
        points = points.round()
    elif case == "offset":
        points = points + 1e4
    for k in sorted({1, min(8, (t - 1) * hw), (t - 1) * hw}):
        assert_exact_knn(points, t, k, knn.search_whole_clip(points, hw, k, clips_at_once))


def test_a_budget_that_holds_whole_clips_searches_them_in_groups(monkeypatch, cpu_paths):
    seen = []
    real_bmm = torch.bmm
    monkeypatch.setattr(knn.torch, "bmm", lambda *args: seen.append(real_bmm(*args).shape)
                        or real_bmm(*args))
    points = torch.randn(5, 3 * 16, 4)
    # As on a GPU, with a budget of two clips' matrices.
    cpu_paths(whole_clip_search=True, search_chunk_elements=2 * 48 * 48 + 1)
    assert_exact_knn(points, 3, 4, other_frame_knn(points, 3, 4))
    assert seen == [(2, 48, 48), (2, 48, 48), (1, 48, 48)]


def test_export_takes_the_whole_clip_search(monkeypatch):
    calls = []
    monkeypatch.setattr(knn, "search_whole_clip", lambda *args: calls.append(args) or "whole")
    points = torch.randn(1, 8, 4)
    assert knn.search_other_frames(points, 4, 2) != "whole"
    monkeypatch.setattr(torch.compiler, "is_exporting", lambda: True)
    assert knn.search_other_frames(points, 4, 2) == "whole" and len(calls) == 1


@pytest.mark.parametrize("path", ["whole-clip", "per-frame"])
def test_exact_where_float32_matmuls_round_operands_to_bfloat16(monkeypatch, cpu_paths, path):
    """With the float32 matmul precision lowered ('medium': bfloat16 operands, or TF32 on a
    GPU), emulated by a bmm that rounds its operands to bfloat16 and sums exactly: the search
    still ranks to float32 precision, on near-ties 1e-3 apart, 100 away from the origin."""
    cpu_paths(whole_clip_search=path == "whole-clip",
              search_chunk_elements=1 << 20 if path == "whole-clip" else 1)
    exact_bmm = torch.bmm
    monkeypatch.setattr(torch, "bmm", lambda a, b: exact_bmm(a.bfloat16().double(),
                                                             b.bfloat16().double()).float())
    gen = torch.Generator().manual_seed(0)
    points = torch.randn(2, 4 * 12, 32, generator=gen) + 100.0
    points[:, 12:24] = points[:, :12] + 1e-3 * torch.randn(2, 12, 32, generator=gen)
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("medium")
    try:
        indices = other_frame_knn(points, 4, 3)
    finally:
        torch.set_float32_matmul_precision(previous)
    assert_exact_knn(points, 4, 3, indices, bfloat16_parts=True)


PRECISION_SETTINGS = {  # setting: (lowered on the CPU, lowered on CUDA)
    "": (False, False),
    "torch.set_float32_matmul_precision('high')": (True, True),
    "torch.set_float32_matmul_precision('highest')": (False, False),
    "torch.backends.cuda.matmul.allow_tf32 = True": (False, True),
    "torch.backends.cuda.matmul.fp32_precision = 'tf32'": (False, True),
    "torch.backends.mkldnn.matmul.fp32_precision = 'bf16'": (True, False),
    "torch.backends.fp32_precision = 'tf32'": (True, True),
}


def test_reads_every_way_users_lower_the_float32_matmul_precision():
    """Legacy and new switches alike (torch raises on its legacy getters once the new API was
    used, so the check must read the new one); in one fresh process, each setting undone."""
    script = ["import torch", "from cp_plugin.knn import float32_matmul_lowered as lowered"]
    for setting in PRECISION_SETTINGS:
        script += [setting or "pass", "print(lowered('cpu'), lowered('cuda'))",
                   "torch.backends.fp32_precision = 'none'",
                   "torch.backends.cuda.matmul.fp32_precision = 'none'",
                   "torch.backends.mkldnn.matmul.fp32_precision = 'none'"]
    result = subprocess.run([sys.executable, "-c", "\n".join(script)], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    expected = [f"{cpu} {cuda}" for cpu, cuda in PRECISION_SETTINGS.values()]
    assert result.stdout.split("\n")[:-1] == expected

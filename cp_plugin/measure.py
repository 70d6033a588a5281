"""Timing, peak memory and dispatched-op counts: ours and a comparison side by side (`make bench`,
the zoo benchmark), on the CPU or a CUDA device."""
from __future__ import annotations

import contextlib
import os
import statistics
import sys
import time
from typing import Callable, Dict, Tuple

import torch
from torch.utils._python_dispatch import TorchDispatchMode


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def alternating_medians(ours: Callable[[], None], baseline: Callable[[], None], *,
                        repeats: int, warmup: int = 1,
                        device: torch.device = torch.device("cpu")) -> Tuple[float, float]:
    """Median seconds of each callable, run in turn so that machine noise hits both alike."""
    medians = alternating_medians_of(dict(ours=ours, baseline=baseline), repeats=repeats,
                                     warmup=warmup, device=device)
    return medians["ours"], medians["baseline"]


def alternating_medians_of(fns: Dict[str, Callable[[], None]], *, repeats: int, warmup: int = 1,
                           device: torch.device = torch.device("cpu")) -> Dict[str, float]:
    """:func:`alternating_medians` for any number of named callables."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: Dict[str, list] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            synchronize(device)
            start = time.perf_counter()
            fn()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


@contextlib.contextmanager
def native_stderr_to(path: str):
    """Point file descriptor 2 at ``path`` for the block: the profiler's C++ side (kineto)
    writes a 'profiler_start' or 'profiler_stop' line there each time, two per memory row."""
    sys.stderr.flush()
    saved = os.dup(2)
    target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        os.dup2(target, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(target)


def peak_memory_bytes(fn: Callable[[], None], device: torch.device = torch.device("cpu")) -> int:
    """Peak bytes that ``fn`` allocates on ``device`` beyond what was allocated when it started.

    CUDA has allocator statistics. The CPU has none, so there every allocation and free that
    the PyTorch profiler records is replayed in order and the running total's maximum taken;
    tensors freed inside ``fn`` but allocated before it count negative, as they should.
    """
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
        fn()
        synchronize(device)
        return torch.cuda.max_memory_allocated(device) - start

    from torch._C._profiler import _ExtraFields_Allocation  # the profiler's own record type
    from torch.profiler import ProfilerActivity, profile

    prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
    with native_stderr_to(os.devnull):
        prof.start()
    try:
        fn()  # its own output, warnings included, still reaches the terminal
    finally:
        with native_stderr_to(os.devnull):
            prof.stop()
    events, stack = [], list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        fields = node.extra_fields
        if isinstance(fields, _ExtraFields_Allocation) and fields.device.type == "cpu":
            events.append((node.start_time_ns, fields.alloc_size))
    current = peak = 0
    for _, size in sorted(events):
        current += size
        peak = max(peak, current)
    return peak


class _DispatchCounter(TorchDispatchMode):
    """Counts the aten ops that reach the dispatcher, views aside, and the host syncs."""

    def __init__(self) -> None:
        super().__init__()
        self.ops = self.syncs = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            self.syncs += 1
        # A view only re-describes memory; every other op is at least one kernel on a GPU.
        if not func.is_view:
            self.ops += 1
        return func(*args, **(kwargs or {}))


def dispatched_ops(fn: Callable[[], None]) -> Tuple[int, int]:
    """(aten ops, host syncs) that one call of ``fn`` dispatches, backward included.

    Read on the CPU, this is what the same code costs a GPU in kernel launches (each non-view
    op is at least one, plus eager dispatch overhead) and in stalls of its queue (a
    ``_local_scalar_dense``: ``bool()``, ``int()``, ``.item()`` of a tensor)."""
    with _DispatchCounter() as counter:
        fn()
    return counter.ops, counter.syncs

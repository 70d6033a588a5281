"""Batch-normalisation statistics gathered chunk by chunk, across ranks as SyncBatchNorm does.

The pair embedding normalises tensors it never holds whole: it adds up their moments chunk by
chunk (:class:`Moments`), combines those of every rank when the BN is a SyncBatchNorm
(:func:`sync_group`, :meth:`Moments.all_reduce`) and updates the BN's running statistics as
``BatchNorm1d.forward`` would (:func:`update_running_stats`).
"""
from __future__ import annotations

from typing import Optional, Union

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["Moments", "all_reduce", "sync_group", "update_running_stats"]


def sync_group(norm: nn.Module):
    """The process group whose ranks share ``norm``'s batch statistics, as SyncBatchNorm's
    forward would decide; None for a plain BN or a single process."""
    if not (isinstance(norm, nn.SyncBatchNorm) and norm.training
            and dist.is_available() and dist.is_initialized()):
        return None
    group = norm.process_group or dist.group.WORLD
    return group if dist.get_world_size(group) > 1 else None


def all_reduce(tensor: torch.Tensor, group) -> torch.Tensor:
    """The sum of ``tensor`` over the ranks of ``group`` (a new tensor); ``tensor`` for None."""
    if group is not None:
        tensor = tensor.clone()
        dist.all_reduce(tensor, group=group)
    return tensor


@torch.no_grad()
def update_running_stats(norm: nn.BatchNorm1d, mean: torch.Tensor, var: torch.Tensor,
                         count: Union[int, torch.Tensor]) -> None:
    """What ``BatchNorm1d.forward`` does to its buffers in training mode, given the batch's
    ``mean`` and biased ``var`` over ``count`` rows (a tensor when summed over ranks)."""
    norm.num_batches_tracked.add_(1)
    momentum = norm.momentum
    if momentum is None:  # cumulative moving average
        momentum = 1.0 / float(norm.num_batches_tracked)
    if isinstance(count, torch.Tensor):  # stays on the device: no host sync
        unbiased = var * (count / (count - 1).clamp_min(1))
    else:
        unbiased = var * (count / max(count - 1, 1))
    norm.running_mean.lerp_(mean.to(norm.running_mean.dtype), momentum)
    norm.running_var.lerp_(unbiased.to(norm.running_var.dtype), momentum)


class Moments:
    """Per-channel count, mean and sum of squared deviations, accumulated chunk by chunk
    (Chan et al.'s pairwise update, stable where sums of squares are not). ``count`` is an int,
    or after :meth:`all_reduce` a one-element tensor: reading it would sync the host."""

    def __init__(self) -> None:
        self.count: Union[int, torch.Tensor] = 0
        self.mean: Optional[torch.Tensor] = None
        self.m2: Optional[torch.Tensor] = None

    def add(self, values: torch.Tensor) -> None:
        """Add the rows of ``values`` (..., C)."""
        flat = values.reshape(-1, values.shape[-1])
        n = flat.shape[0]
        # Plain sums over the rows: several times faster here than mean(0) or var_mean.
        mean = flat.sum(0) / n
        centred = flat - mean
        m2 = (centred * centred).sum(0)
        if self.mean is None:
            self.count, self.mean, self.m2 = n, mean, m2
            return
        delta = mean - self.mean
        total = self.count + n
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + m2 + delta.pow(2) * (self.count * n / total)
        self.count = total

    def all_reduce(self, group) -> None:
        """Combine the moments of every rank in ``group`` (SyncBatchNorm's statistics)."""
        if group is None:
            return
        count = self.mean.new_tensor([float(self.count)])
        sums = all_reduce(torch.cat([count, self.mean * self.count]), group)
        total, mean = sums[0], sums[1:] / sums[0]
        m2 = all_reduce(self.m2 + (self.mean - mean).pow(2) * self.count, group)
        self.count, self.mean, self.m2 = total, mean, m2

    @property
    def variance(self) -> torch.Tensor:
        """The biased variance, as BN normalises with."""
        return self.m2 / self.count

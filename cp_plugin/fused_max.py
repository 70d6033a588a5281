"""The last layer of CP's pair embedding fused with the max over the k neighbours.

The last layer computes ``relu(BN(linear(a)))`` for every (point, neighbour) pair and the module
keeps only its max over the k neighbours. BN's per-channel affine map followed by ReLU is
monotone in each channel (non-decreasing where gamma >= 0, non-increasing otherwise), so that max
is the same map applied to the max (or min) over k of ``linear(a)``. Autograd would keep two
(pairs x channels) tensors for backward; this keeps the per-point extremum and which neighbour
gave it, and recomputes ``linear(a)`` chunk by chunk in backward. BN's batch statistics come
from chunk-wise moments (Chan et al.'s pairwise update), so no pair tensor of the last layer
is ever whole in memory.

Gradients equal autograd's except where neighbours tie exactly for a channel's maximum (or
gamma is exactly 0, which makes all of them tie): ``amax`` splits the gradient between them,
this gives it all to one; the max is not differentiable there, and both are one-sided slopes.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

__all__ = ["linear_bn_relu_max"]

#: Elements of one chunk of linear outputs (rows x k x channels): 4 MiB in float32.
CHUNK_ELEMENTS = 1 << 20


def linear_bn_relu_max(x: torch.Tensor, weight: Optional[torch.Tensor],
                       norm: nn.BatchNorm1d) -> torch.Tensor:
    """``relu(norm(x @ weight.T)).amax(dim=1)`` for x of shape (M, k, C_in), without the pairs.

    ``weight`` None means no linear layer (the identity). ``norm`` follows the usual BatchNorm
    rules: batch statistics (and a running-statistics update) in training mode or without
    running statistics, the running statistics otherwise.
    """
    use_batch_stats = norm.training or norm.running_mean is None
    out, mean, var = _LinearBNReLUMax.apply(
        x, weight, norm.weight, norm.bias, norm.running_mean, norm.running_var,
        use_batch_stats, norm.eps)
    if use_batch_stats and norm.training and norm.track_running_stats:
        _update_running_stats(norm, mean, var, count=x.shape[0] * x.shape[1])
    return out


@torch.no_grad()
def _update_running_stats(norm: nn.BatchNorm1d, mean: torch.Tensor, var: torch.Tensor,
                          count: int) -> None:
    """What ``BatchNorm1d.forward`` does to its buffers in training mode."""
    norm.num_batches_tracked.add_(1)
    momentum = norm.momentum
    if momentum is None:  # cumulative moving average
        momentum = 1.0 / float(norm.num_batches_tracked)
    unbiased = var * (count / max(count - 1, 1))
    norm.running_mean.lerp_(mean.to(norm.running_mean.dtype), momentum)
    norm.running_var.lerp_(unbiased.to(norm.running_var.dtype), momentum)


def _chunks(rows: int, k: int, channels: int):
    step = max(1, CHUNK_ELEMENTS // max(1, k * channels))
    return [(start, min(start + step, rows)) for start in range(0, rows, step)]


def _linear(x: torch.Tensor, weight: Optional[torch.Tensor]) -> torch.Tensor:
    return x if weight is None else x @ weight.t()


class _LinearBNReLUMax(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, gamma, beta, running_mean, running_var, use_batch_stats, eps):
        rows, k, _ = x.shape
        channels = x.shape[-1] if weight is None else weight.shape[0]
        highest = x.new_empty(rows, channels)
        lowest = x.new_empty(rows, channels)
        index_dtype = torch.uint8 if k <= 256 else torch.int64
        at_highest = torch.empty(rows, channels, dtype=index_dtype, device=x.device)
        at_lowest = torch.empty_like(at_highest)
        count, mean, m2 = 0, None, None
        for start, stop in _chunks(rows, k, channels):
            z = _linear(x[start:stop], weight)  # (rows, k, C)
            values, where = z.max(dim=1)
            highest[start:stop], at_highest[start:stop] = values, where
            values, where = z.min(dim=1)
            lowest[start:stop], at_lowest[start:stop] = values, where
            if use_batch_stats:
                flat = z.reshape(-1, channels)
                n = flat.shape[0]
                chunk_mean = flat.mean(0)
                chunk_m2 = (flat - chunk_mean).pow(2).sum(0)
                if mean is None:
                    count, mean, m2 = n, chunk_mean, chunk_m2
                else:  # combine two sets' mean and sum of squared deviations
                    delta = chunk_mean - mean
                    total = count + n
                    mean = mean + delta * (n / total)
                    m2 = m2 + chunk_m2 + delta.pow(2) * (count * n / total)
                    count = total
        if use_batch_stats:
            var = m2 / count
        else:
            mean, var = running_mean.to(x.dtype), running_var.to(x.dtype)
        invstd = torch.rsqrt(var + eps)
        scale = invstd if gamma is None else gamma * invstd
        shift = -mean * scale if beta is None else beta - mean * scale
        # The monotone map attains its max over k where z is highest (scale >= 0) or lowest.
        rising = scale >= 0
        chosen = torch.where(rising, highest, lowest)
        chosen_at = torch.where(rising, at_highest, at_lowest)
        pre_relu = chosen * scale + shift
        out = pre_relu.clamp_min(0)
        ctx.save_for_backward(x, weight, gamma, mean, invstd, chosen, chosen_at, pre_relu)
        ctx.use_batch_stats = use_batch_stats
        ctx.mark_non_differentiable(mean, var)
        return out, mean, var

    @staticmethod
    def backward(ctx, grad_out, _grad_mean, _grad_var):
        x, weight, gamma, mean, invstd, chosen, chosen_at, pre_relu = ctx.saved_tensors
        rows, k, _ = x.shape
        channels = chosen.shape[1]
        count = rows * k
        # d loss / d (BN output) is zero except at each point's chosen neighbour.
        grad_y = grad_out * (pre_relu > 0)
        x_hat_chosen = (chosen - mean) * invstd
        grad_beta = grad_y.sum(0)
        grad_gamma = (grad_y * x_hat_chosen).sum(0)
        gamma_ = torch.ones_like(invstd) if gamma is None else gamma
        # d loss / d z = sparse part (at the chosen neighbours) + dense part (through the batch
        # statistics): gamma * invstd * (grad_y - (grad_beta + x_hat * grad_gamma) / count).
        sparse = (gamma_ * invstd * grad_y).unsqueeze(1)
        if ctx.use_batch_stats:
            dense_x_hat = -gamma_ * invstd * grad_gamma / count
            dense_const = -gamma_ * invstd * grad_beta / count
        need_x = ctx.needs_input_grad[0]
        grad_x = torch.empty_like(x) if need_x else None
        grad_weight = (torch.zeros_like(weight)
                       if weight is not None and ctx.needs_input_grad[1] else None)
        for start, stop in _chunks(rows, k, channels):
            x_chunk = x[start:stop]
            if ctx.use_batch_stats:
                x_hat = (_linear(x_chunk, weight) - mean) * invstd
                grad_z = x_hat * dense_x_hat + dense_const
            else:
                grad_z = x_chunk.new_zeros(stop - start, k, channels)
            index = chosen_at[start:stop].long().unsqueeze(1)
            grad_z.scatter_add_(1, index, sparse[start:stop])
            if grad_weight is not None:
                grad_weight += grad_z.reshape(-1, channels).t() @ x_chunk.reshape(-1, x.shape[-1])
            if need_x:
                grad_x[start:stop] = grad_z if weight is None else grad_z @ weight
        grad_gamma = grad_gamma if gamma is not None and ctx.needs_input_grad[2] else None
        grad_beta = grad_beta if ctx.needs_input_grad[3] else None
        return grad_x, grad_weight, grad_gamma, grad_beta, None, None, None, None


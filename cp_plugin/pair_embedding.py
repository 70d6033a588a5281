"""CP's pair embedding and its max over the k neighbours, computed without the big pair tensors.

For every point i and each of its k neighbours j the CP module embeds the pair with an MLP
(linear -> BN -> ReLU per layer) and keeps the max over j. Autograd keeps two (points x k x
width) tensors per layer for backward, several times the memory of everything else in the
module. Here the layers run chunk by chunk over the points and backward recomputes them:

* The last layer's BN affine map and ReLU are monotone in each channel, so its max over k is
  the map applied to the max (or, for a negative scale, the min) of its pre-BN values: its
  pairs are never needed whole, in forward or backward.
* BN needs statistics over all pairs before any pair can be normalised, so forward makes one
  pass over the chunks per BN with batch statistics (:mod:`cp_plugin.batch_stats`), and
  backward one pass per such BN below the last, whose input gradient needs sums over all pairs.

:func:`embed_pairs_max` runs every layer so (``recompute=True``), or (the default, faster) only
the last one, the layers below it running as plain autograd ops on whole pair tensors.
Gradients match autograd's, including how ``amax`` shares the gradient between tied maxima.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .batch_stats import Moments, all_reduce, sync_group, update_running_stats
from .device_paths import get_device_paths
from .tracing import exporting

__all__ = ["embed_pairs_max"]


def embed_pairs_max(centre: torch.Tensor, neighbour: torch.Tensor, index: torch.Tensor,
                    weights: Sequence[Optional[torch.Tensor]], norms: Sequence[nn.BatchNorm1d],
                    recompute: bool = False) -> torch.Tensor:
    """``max_j relu(BN_L(W_L ... relu(BN_1(centre_i + neighbour_j))))`` for every point i.

    Args:
        centre: (M, C1) per-point term of the first layer's output.
        neighbour: (M, C1) the same for the point as a neighbour; pair (i, j) starts at
            ``centre[i] + neighbour[j]``.
        index: (M, k) int64 rows of ``neighbour`` paired with each point.
        weights: per layer, the linear weight applied before its BN; None for the first layer
            (its linear map is already in ``centre`` and ``neighbour``).
        norms: per layer, the BatchNorm1d after it, used as ``norm.forward`` would: batch
            statistics (and a running-statistics update) in training mode, running ones in eval.
            A SyncBatchNorm's statistics are those of all ranks' pairs, as its forward computes.
        recompute: keep no pair tensor of any layer for backward (slower, least memory).

    Returns:
        (M, C_L) the max over the k pairs of the last layer's output.

    Where the pair tensors fit the device's ``plain_pair_elements`` (a GPU's usual case;
    :mod:`cp_plugin.device_paths`) every layer runs as plain autograd ops on whole tensors, as
    while torch.export traces. The fused path's chunks hold ``pair_chunk_elements`` each.
    """
    # torch.export (and so ONNX) traces plain ops: the fused last layer's chunk loop would fix
    # the number of points, and so T, H and W, in the exported graph.
    plain = exporting() or (not recompute and _pairs_fit_whole(neighbour, index, weights))
    if recompute and not plain:
        return _fused(centre, neighbour, index, weights, norms)
    pairs = neighbour.index_select(0, index.reshape(-1)).view(*index.shape, -1)
    pairs = pairs.add_(centre.unsqueeze(1))  # (M, k, C1)
    unfused = len(weights) if plain else len(weights) - 1
    for weight, norm in zip(weights[:unfused], norms[:unfused]):
        pairs = pairs if weight is None else F.linear(pairs, weight)
        pairs = F.relu(norm(pairs.reshape(-1, pairs.shape[-1])), inplace=True).view(pairs.shape)
    if plain:
        return pairs.amax(dim=1)
    return _fused(None, pairs, None, weights[-1:], norms[-1:])


def _pairs_fit_whole(neighbour: torch.Tensor, index: torch.Tensor,
                     weights: Sequence[Optional[torch.Tensor]]) -> bool:
    widest = max([neighbour.shape[-1]] + [w.shape[0] for w in weights if w is not None])
    return index.numel() * widest <= get_device_paths(neighbour.device).plain_pair_elements


def _fused(centre, neighbour, index, weights, norms) -> torch.Tensor:
    # Under autocast the pair values stay in the parameters' dtype, with autocast off so that
    # backward (where it is off) sees the same dtypes: BN statistics and the max are taken
    # there. Each matmul, forward and backward, runs in autocast's dtype, as autocast would run
    # the plain path's (it lowers float32 matmuls only).
    device, dtype = neighbour.device.type, norms[-1].weight.dtype
    matmul_dtype = (torch.get_autocast_dtype(device)
                    if torch.is_autocast_enabled(device) and dtype == torch.float32 else None)
    with torch.autocast(device, enabled=False):
        return _fused_in(None if centre is None else centre.to(dtype), neighbour.to(dtype), index,
                         weights, norms, matmul_dtype)


def _fused_in(centre, neighbour, index, weights, norms, matmul_dtype) -> torch.Tensor:
    batch_stats = tuple(norm.training or norm.running_mean is None for norm in norms)
    spec = _Spec(batch_stats, tuple(norm.eps for norm in norms),
                 [(norm.running_mean, norm.running_var) for norm in norms],
                 [sync_group(norm) if uses_batch else None
                  for norm, uses_batch in zip(norms, batch_stats)], matmul_dtype)
    params: List[Optional[torch.Tensor]] = []
    for weight, norm in zip(weights, norms):
        params += [weight, norm.weight, norm.bias]
    outputs = _PairEmbeddingMax.apply(spec, centre, neighbour, index, *params)
    pooled, means, variances = outputs[0], outputs[1::2], outputs[2::2]
    for norm, uses_batch, mean, var, count in zip(norms, batch_stats, means, variances, spec.counts):
        if uses_batch and norm.training and norm.track_running_stats:
            update_running_stats(norm, mean, var, count)
    return pooled


class _Spec:
    """The non-tensor facts the autograd function needs, passed through ``apply`` as one object."""

    def __init__(self, batch_stats, eps, running, groups, matmul_dtype):
        self.batch_stats, self.eps, self.running, self.groups = batch_stats, eps, running, groups
        self.matmul_dtype = matmul_dtype  # None: the values' own
        self.num_layers = len(batch_stats)
        self.counts = [0] * self.num_layers  # pairs behind each BN's statistics, all ranks


class _Pairs:
    """Recomputes, for a chunk of points, the pairs' values at each layer."""

    def __init__(self, centre, neighbour, index, weights, scales, shifts, matmul_dtype):
        self.centre, self.neighbour, self.index = centre, neighbour, index
        self.matmul_dtype = matmul_dtype
        self.weights, self.scales, self.shifts = weights, scales, shifts
        self.rows = neighbour.shape[0] if index is None else index.shape[0]
        self.k = neighbour.shape[1] if index is None else index.shape[1]
        widths = [neighbour.shape[-1]] + [w.shape[0] for w in weights if w is not None]
        budget = get_device_paths(neighbour.device).pair_chunk_elements
        step = max(1, budget // (self.k * max(widths)))
        self.chunks = [slice(s, min(s + step, self.rows)) for s in range(0, self.rows, step)]

    def first(self, part: slice) -> torch.Tensor:
        """The first layer's input for the points ``part``: (points, k, C1)."""
        if self.index is None:
            return self.neighbour[part]
        pairs = self.neighbour[self.index[part]]
        return pairs if self.centre is None else pairs.add_(self.centre[part].unsqueeze(1))

    def pre_bn(self, part: slice, upto: int) -> List[torch.Tensor]:
        """Pre-BN values of layers 0..upto and the post-ReLU values below them, interleaved:
        ``[z_0, a_0, z_1, a_1, ..., z_upto]``."""
        x = self.first(part)
        values = []
        for layer in range(upto + 1):
            if layer:
                x = (values[-1] * self.scales[layer - 1] + self.shifts[layer - 1]).clamp_min_(0)
                values.append(x)
            weight = self.weights[layer]
            values.append(x if weight is None else _linear(x, weight, self.matmul_dtype))
        return values


class _PairEmbeddingMax(torch.autograd.Function):
    @staticmethod
    def forward(ctx, spec, centre, neighbour, index, *params):
        weights, gammas, betas = params[0::3], params[1::3], params[2::3]
        last = spec.num_layers - 1
        scales, shifts, means, variances = [], [], [], []
        pairs = _Pairs(centre, neighbour, index, weights, scales, shifts, spec.matmul_dtype)
        channels = gammas[last].shape[0]
        highest = neighbour.new_empty(pairs.rows, channels)
        lowest = neighbour.new_empty(pairs.rows, channels)
        # One pass per layer, bottom up: a layer's pairs can only be recomputed once the BNs
        # below it are known, and its own BN needs moments over all of its pairs.
        for layer in range(spec.num_layers):
            moments = Moments()
            if spec.batch_stats[layer] or layer == last:
                for part in pairs.chunks:
                    z = pairs.pre_bn(part, layer)[-1]
                    if spec.batch_stats[layer]:
                        moments.add(z)
                    if layer == last:
                        # amax and amin: each far faster than aminmax or max with indices.
                        torch.amax(z, 1, out=highest[part])
                        torch.amin(z, 1, out=lowest[part])
            if spec.batch_stats[layer]:
                moments.all_reduce(spec.groups[layer])
                spec.counts[layer] = moments.count
                mean, var = moments.mean, moments.variance
            else:
                mean, var = (t.to(neighbour.dtype) for t in spec.running[layer])
            scales.append(gammas[layer] * torch.rsqrt(var + spec.eps[layer]))
            shifts.append(betas[layer] - mean * scales[-1])
            means.append(mean)
            variances.append(var)

        # Monotone per channel: the max over k sits at the highest z where scale >= 0.
        chosen = torch.where(scales[last] >= 0, highest, lowest)
        pooled = (chosen * scales[last] + shifts[last]).clamp_min_(0)
        ctx.spec = spec
        ctx.weight_given = [w is not None for w in weights]
        ctx.save_for_backward(centre, neighbour, index, pooled, chosen,
                              *[w for w in weights if w is not None],
                              *scales, *shifts, *means, *variances)
        ctx.mark_non_differentiable(*means, *variances)
        outputs = [pooled]
        for mean, var in zip(means, variances):
            outputs += [mean, var]
        return tuple(outputs)

    @staticmethod
    def backward(ctx, grad_pooled, *_grad_stats):
        return _Backward(ctx, grad_pooled).run()


class _Backward:
    """Backward of :class:`_PairEmbeddingMax`, in the passes over the chunks it needs.

    Notation per layer l: z_l the pre-BN values of the pairs, a_l = relu(scale_l z_l + shift_l)
    their output, dy the gradient at a BN's output. A BN with batch statistics passes back
    ``scale * (dy - (sum(dy) + x_hat * sum(dy * x_hat)) / count)``: its input gradient needs two
    sums over *all* pairs (of all ranks for a SyncBatchNorm) before any pair's can be formed.
    """

    def __init__(self, ctx, grad_pooled: torch.Tensor) -> None:
        spec = self.spec = ctx.spec
        layers = spec.num_layers
        self.last = layers - 1
        centre, neighbour, index, self.pooled, self.chosen, *rest = ctx.saved_tensors
        given = iter(rest[:sum(ctx.weight_given)])
        self.weights = [next(given) if g else None for g in ctx.weight_given]
        rest = rest[sum(ctx.weight_given):]
        self.scales, shifts, self.means, variances = (rest[i * layers:(i + 1) * layers]
                                                      for i in range(4))
        self.invstds = [torch.rsqrt(v + eps) for v, eps in zip(variances, spec.eps)]
        self.matmul_dtype = spec.matmul_dtype
        self.pairs = _Pairs(centre, neighbour, index, self.weights, self.scales, shifts,
                            spec.matmul_dtype)
        self.index = index
        self.grad_pooled = grad_pooled
        # d gamma_l = sum(dy * x_hat), d beta_l = sum(dy): this rank's sums over the pairs.
        self.sum_dy: List[Optional[torch.Tensor]] = [None] * layers
        self.sum_dy_xhat: List[Optional[torch.Tensor]] = [None] * layers
        # The same sums over every rank's pairs, for the input gradient of a batch-statistics
        # BN; d gamma and d beta stay this rank's, for DDP to reduce as it does SyncBatchNorm's.
        self.synced: List[Optional[tuple]] = [None] * layers
        self.grad_centre = torch.zeros_like(centre) if ctx.needs_input_grad[1] else None
        self.grad_neighbour = None
        if ctx.needs_input_grad[2]:  # accumulated through index, else written chunk by chunk
            self.grad_neighbour = (torch.empty_like(neighbour) if index is None
                                   else torch.zeros_like(neighbour))
        self.grad_weights = [None if w is None else torch.zeros_like(w) for w in self.weights]

    def run(self) -> tuple:
        spec, last = self.spec, self.last
        # Step 1, no recompute: the last BN's dy is non-zero only at each point's max, whose
        # pre-BN value forward saved (``chosen``), so its sums are per point.
        self.active = self.grad_pooled * (self.pooled > 0)
        # A zero max has no gradient: NaN there matches no pair in the tie test of step 3.
        self.positive_pooled = self.pooled.masked_fill(self.pooled <= 0, float("nan"))
        self.sum_dy[last] = self.active.sum(0)
        self.sum_dy_xhat[last] = (self.active * (self.chosen - self.means[last])
                                  * self.invstds[last]).sum(0)
        if spec.batch_stats[last]:
            self._sync(last)
        # Step 2, one recomputing pass per batch-statistics BN below the last, from the top:
        # each pass carries dy down to that layer and only adds up its sums, which the pass for
        # the layer below (and the final one) needs to get through it.
        pending = [layer for layer in range(last - 1, -1, -1) if spec.batch_stats[layer]]
        for layer in pending:
            for part in self.pairs.chunks:
                self._chunk(part, stop_at=layer)
            self._sync(layer)
        # Step 3, the final recomputing pass: all the way down, into the weights and the inputs.
        for part in self.pairs.chunks:
            self._chunk(part, stop_at=None)

        grads = []
        for layer in range(spec.num_layers):
            grads += [self.grad_weights[layer], self.sum_dy_xhat[layer], self.sum_dy[layer]]
        return (None, self.grad_centre, self.grad_neighbour, None, *grads)

    def _sync(self, layer: int) -> None:
        both = all_reduce(torch.stack([self.sum_dy[layer], self.sum_dy_xhat[layer]]),
                          self.spec.groups[layer])
        self.synced[layer] = (both[0], both[1], self.spec.counts[layer])

    def _chunk(self, part: slice, stop_at: Optional[int]) -> None:
        """Recompute the chunk's pairs at every layer and carry the gradient down from the max,
        to layer ``stop_at`` (adding up its BN sums) or, for None, into weights and inputs."""
        spec, last = self.spec, self.last
        values = self.pairs.pre_bn(part, last)  # z_0, a_0, z_1, a_1, ..., z_L
        grad_y = self._grad_at_max(part, values[-1])
        for layer in range(last, -1, -1):
            z = values[2 * layer]
            # This pass owns the BN sums of layer ``stop_at``; the final pass those of the BNs
            # with running statistics (which need no cross-pair sums, hence no pass of their own).
            if layer == stop_at or (stop_at is None and layer < last
                                    and not spec.batch_stats[layer]):
                self._add_bn_sums(layer, grad_y, z)
            if layer == stop_at:
                return
            grad_z = self._through_bn(layer, grad_y, z)
            final = stop_at is None
            below = values[2 * layer - 1] if layer else None
            if final and self.grad_weights[layer] is not None:
                inputs = below if layer else self.pairs.first(part)
                self.grad_weights[layer] += _matmul(grad_z.reshape(-1, grad_z.shape[-1]).t(),
                                                    inputs.reshape(-1, inputs.shape[-1]),
                                                    self.matmul_dtype)
            if layer:
                grad_y = _matmul(grad_z, self.weights[layer], self.matmul_dtype)
                grad_y = grad_y.mul_(below > 0)  # through the ReLU
            else:
                self._to_inputs(grad_z, part)

    def _grad_at_max(self, part: slice, z_last: torch.Tensor) -> torch.Tensor:
        """d loss / d (last layer's output) per pair, by amax's rule: the point's gradient,
        shared equally between the pairs tied at its max, zero elsewhere."""
        y = (z_last * self.scales[self.last] + self.pairs.shifts[self.last]).clamp_min_(0)
        is_max = (y == self.positive_pooled[part].unsqueeze(1)).to(y.dtype)
        ties = is_max.sum(1, keepdim=True).clamp_min_(1)
        return is_max.mul_(self.grad_pooled[part].unsqueeze(1) / ties)

    def _add_bn_sums(self, layer: int, grad_y: torch.Tensor, z: torch.Tensor) -> None:
        # sum(dy * x_hat) = invstd * (sum(dy * z) - mean * sum(dy))
        dy = grad_y.sum((0, 1))
        dy_z = (grad_y * z).sum((0, 1))
        self.sum_dy[layer] = _add(self.sum_dy[layer], dy)
        self.sum_dy_xhat[layer] = _add(self.sum_dy_xhat[layer],
                                       (dy_z - self.means[layer] * dy) * self.invstds[layer])

    def _through_bn(self, layer: int, grad_y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """dy at a BN's output -> the gradient at its input z."""
        scale = self.scales[layer]
        if not self.spec.batch_stats[layer]:
            return grad_y * scale
        # The part through the statistics is linear in z: offset + slope * z.
        all_dy, all_dy_xhat, count = self.synced[layer]
        slope = -scale * self.invstds[layer] * all_dy_xhat / count
        offset = -scale * all_dy / count - slope * self.means[layer]
        return torch.addcmul(offset, z, slope).addcmul_(grad_y, scale)

    def _to_inputs(self, grad_z: torch.Tensor, part: slice) -> None:
        """Send the first layer's gradient (points, k, C) back to centre and neighbour."""
        weight, index = self.weights[0], self.index
        grad_centre, grad_neighbour = self.grad_centre, self.grad_neighbour
        if index is None:  # neighbour holds the pairs themselves (and there is no centre)
            if grad_neighbour is None:
                return
            if weight is None:
                grad_neighbour[part] = grad_z
            elif self.matmul_dtype is None:  # straight into place: no temporary to copy
                torch.matmul(grad_z, weight, out=grad_neighbour[part])
            else:
                grad_neighbour[part] = _matmul(grad_z, weight, self.matmul_dtype)
            return
        grad_pairs = grad_z if weight is None else _matmul(grad_z, weight, self.matmul_dtype)
        if grad_centre is not None:
            torch.sum(grad_pairs, 1, out=grad_centre[part])
        if grad_neighbour is not None:
            grad_neighbour.index_add_(0, index[part].reshape(-1),
                                      grad_pairs.reshape(-1, grad_pairs.shape[-1]))


def _matmul(a: torch.Tensor, b: torch.Tensor, dtype: Optional[torch.dtype]) -> torch.Tensor:
    """``a @ b`` computed in ``dtype`` (autocast's, or None for the operands' own), returned in
    ``a``'s dtype."""
    if dtype is None:
        return a @ b
    return (a.to(dtype) @ b.to(dtype)).to(a.dtype)


def _linear(x: torch.Tensor, weight: torch.Tensor, dtype: Optional[torch.dtype]) -> torch.Tensor:
    """``F.linear(x, weight)`` computed in ``dtype`` as :func:`_matmul`."""
    if dtype is None:
        return F.linear(x, weight)
    return F.linear(x.to(dtype), weight.to(dtype)).to(x.dtype)


def _add(total: Optional[torch.Tensor], value: torch.Tensor) -> torch.Tensor:
    return value if total is None else total + value

"""Comparisons whose tolerances come from floating-point rounding, not from one machine.

Two computations of the same quantity (two code paths, two memory layouts, one CPU's kernels
against another's) differ by the rounding of the sums behind them, and that depends on the order
of summation, which SIMD width, blocking and thread count change from CPU to CPU. A sum of n
terms in a type with unit roundoff eps is off by at most about ``n * eps * sum|terms|``
(Higham, *Accuracy and Stability of Numerical Algorithms*, section 4.2), and errors along a
chain of layers add up. A tolerance built that way holds on any CPU and is still orders of
magnitude below what a wrong result changes. Used by the test suite and by
``benchmarks.cuda_check``; imports only torch.
"""
from __future__ import annotations

import os
from typing import Callable, Optional, Union

import torch

__all__ = ["PATHS_RTOL", "assert_same_in_float64", "assert_differ_in_float64",
           "FLOAT32_ORDER_MARGIN", "assert_float32_like", "perturbed",
           "rounding_bound", "assert_close_to_rounding", "assert_differ_beyond_rounding",
           "assert_step_matches", "summed_fan_in", "network_reduction_length",
           "cp_reduction_length", "search_rounding_bound"]

Number = Union[float, torch.Tensor]

#: Two code paths that compute the same thing, both in float64, agree to this fraction of the
#: compared quantity's largest magnitude: float64 rounding (1.1e-16 per operation) summed over
#: any of the suite's reductions stays below 1e-11, and a real bug moves results far more.
PATHS_RTOL = 1e-9
#: The harness behind docs/reliability.md's list: with CP_PLUGIN_TESTING_PERTURB=1e-8 (or 1e-4)
#: in the environment, every comparison here first scales ``actual`` by 1 + that, so each test
#: built on them can be shown to fail when what it guards is off by that much.
PERTURB_VARIABLE = "CP_PLUGIN_TESTING_PERTURB"


def perturbed(actual: torch.Tensor) -> torch.Tensor:
    """``actual`` as the comparisons here see it: scaled by the harness's perturbation, if set."""
    relative = os.environ.get(PERTURB_VARIABLE)
    return actual if not relative else actual * (1 + float(relative))


def assert_same_in_float64(actual: torch.Tensor, expected: torch.Tensor, *,
                           scale: Optional[float] = None,
                           msg: Optional[Union[str, Callable[[str], str]]] = None) -> None:
    """Two code paths computing the same quantity, both run in float64: equal to
    :data:`PATHS_RTOL` times ``scale`` (default ``expected``'s largest magnitude), element-wise.
    Pass ``scale`` for a quantity that is zero up to rounding (a BN's bias gradient before
    another BN): the scale of the sums it comes from, e.g. the largest gradient."""
    for name, tensor in (("actual", actual), ("expected", expected)):
        if tensor.dtype != torch.float64:
            raise TypeError(f"{name} is {tensor.dtype}: compare code paths in float64 "
                            f"(model.double(), inputs.double())")
    if scale is None:
        scale = float(expected.detach().abs().max())
    torch.testing.assert_close(perturbed(actual.detach()), expected.detach(), rtol=0,
                               atol=PATHS_RTOL * scale, msg=msg)


#: How much larger another float32 evaluation's error may be than a measured one's: see
#: :func:`assert_float32_like`. Two summation orders of the same float32 computation gave
#: errors 0.5-1.6x each other's here (onnxruntime against eager PyTorch, a timm CPNet-R18).
FLOAT32_ORDER_MARGIN = 8.0


def assert_float32_like(actual: torch.Tensor, measured: torch.Tensor, truth: torch.Tensor, *,
                        msg: Optional[Union[str, Callable[[str], str]]] = None) -> None:
    """For a float32 path that cannot run in float64 (onnxruntime has no float64 convolution):
    ``actual`` is within :data:`FLOAT32_ORDER_MARGIN` times the error that float32 costs
    ``measured``, a float32 evaluation of the same function on the same inputs, against
    ``truth``, its float64 evaluation. A measured float64 error model: the same operations in
    the same precision, summed in another order, round by amounts of the same size, on any CPU
    (both are measured on the CPU the test runs on)."""
    if truth.dtype != torch.float64 or measured.dtype != torch.float32:
        raise TypeError(f"truth must be float64 and measured float32, got {truth.dtype} and "
                        f"{measured.dtype}")
    error = float((measured.double() - truth).abs().max())
    torch.testing.assert_close(perturbed(actual.detach().double()), truth, rtol=0,
                               atol=FLOAT32_ORDER_MARGIN * error, msg=msg)


def assert_differ_in_float64(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """A check that a change had an effect, in float64: somewhere ``actual`` and ``expected``
    differ by more than :func:`assert_same_in_float64` allows."""
    scale = float(expected.detach().abs().max())
    difference = float((actual.detach() - expected.detach()).abs().max())
    assert difference > PATHS_RTOL * scale, \
        f"greatest difference {difference:.3g} is within float64 rounding ({PATHS_RTOL * scale:.3g})"


def rounding_bound(reduction_length: int, magnitude: Number, dtype=torch.float32) -> float:
    """Worst-case rounding error of sums of ``reduction_length`` terms of size ``magnitude``.

    ``reduction_length`` is the number of terms summed into one result, added up along a chain
    of operations (a 1x1 conv over C channels, then a BN over N*T*H*W points: C + N*T*H*W).
    ``magnitude`` is the size of the result's terms, usually the largest value compared.
    """
    if isinstance(magnitude, torch.Tensor):
        magnitude = magnitude.detach()
    return reduction_length * torch.finfo(dtype).eps * float(magnitude)


def assert_close_to_rounding(actual: torch.Tensor, expected: torch.Tensor, *,
                             reduction_length: int, magnitude: Optional[Number] = None,
                             dtype: Optional[torch.dtype] = None,
                             msg: Optional[Union[str, Callable[[str], str]]] = None) -> None:
    """Assert ``|actual - expected| <= rounding_bound(...)`` element-wise.

    Args:
        actual, expected: the same quantity computed two ways (``expected`` may be float64).
        reduction_length: terms summed into each result along the computation (see
            :func:`rounding_bound`).
        magnitude: size of the terms; default the largest ``|expected|``.
        dtype: the precision the computations ran in; default the lower of the two.
    """
    atol = _tolerance(actual, expected, reduction_length, magnitude, dtype)
    torch.testing.assert_close(perturbed(actual.detach().to(expected.dtype)), expected.detach(),
                               rtol=0, atol=atol, msg=msg)


def assert_differ_beyond_rounding(actual: torch.Tensor, expected: torch.Tensor, *,
                                  reduction_length: int, magnitude: Optional[Number] = None,
                                  dtype: Optional[torch.dtype] = None) -> None:
    """Assert that ``actual`` and ``expected`` differ somewhere by more than rounding could make
    them (arguments as :func:`assert_close_to_rounding`): a check that a change had an effect
    cannot then pass on rounding noise alone."""
    atol = _tolerance(actual, expected, reduction_length, magnitude, dtype)
    difference = float((actual.detach().to(expected.dtype) - expected.detach()).abs().max())
    assert difference > atol, \
        f"greatest difference {difference:.3g} is within rounding ({atol:.3g})"


def _tolerance(actual, expected, reduction_length, magnitude, dtype) -> float:
    if dtype is None:
        dtype = max(actual.dtype, expected.dtype, key=lambda d: torch.finfo(d).eps)
    if magnitude is None:
        magnitude = expected.detach().abs().max()
    bound = rounding_bound(reduction_length, magnitude, dtype)
    if dtype == torch.float64:  # never looser than two float64 code paths may differ
        bound = min(bound, PATHS_RTOL * float(magnitude))
    return bound


def assert_step_matches(expected: torch.nn.Module, actual: torch.nn.Module,
                        expected_out: torch.Tensor, actual_out: torch.Tensor, *,
                        reduction_length: int) -> None:
    """Two copies of a model after one forward and backward each (say eager and compiled):
    outputs, every parameter's gradient and every floating-point buffer (BN statistics) agree
    to rounding (see :func:`assert_close_to_rounding`)."""
    assert_close_to_rounding(actual_out, expected_out, reduction_length=reduction_length)
    grads = [(name, p.grad) for name, p in expected.named_parameters()]
    for (name, grad), twin_param in zip(grads, actual.parameters()):
        assert twin_param.grad is not None, name
        assert_close_to_rounding(twin_param.grad, grad, reduction_length=reduction_length,
                                 msg=lambda m, name=name: f"{name}: {m}")
    for (name, buffer), twin_buffer in zip(expected.named_buffers(), actual.buffers()):
        if buffer.is_floating_point():
            assert_close_to_rounding(twin_buffer, buffer, reduction_length=reduction_length,
                                     msg=lambda m, name=name: f"{name}: {m}")


def summed_fan_in(module: torch.nn.Module) -> int:
    """Terms summed into one output along the longest chain of ``module``'s layers, at most:
    the fan-in of every conv and linear layer (parallel branches included, so an upper bound)."""
    return sum(m.weight[0].numel() for m in module.modules()
               if isinstance(getattr(m, "weight", None), torch.Tensor) and m.weight.dim() >= 2)


def network_reduction_length(module: torch.nn.Module, x: torch.Tensor) -> int:
    """An upper bound on the terms summed into one output or gradient of ``module`` on the batch
    ``x`` (N, C, ...): :func:`summed_fan_in`, plus the batch's positions (N*T*H*W for clips)
    once for the sums over positions (a weight's gradient, a global pool) and once more for
    every norm layer in training mode (its batch statistics); later layers see fewer."""
    positions = x.numel() // x.shape[1]
    norms = sum(isinstance(m, torch.nn.modules.batchnorm._NormBase) and m.training
                for m in module.modules())
    return summed_fan_in(module) + (1 + norms) * positions


def cp_reduction_length(module: torch.nn.Module, x: torch.Tensor) -> int:
    """:func:`network_reduction_length` for a CP module on clips ``x`` (N, C, T, H, W): its BNs
    sum over the N*T*H*W*k pairs (an upper bound for those that see points, and in eval mode)."""
    pairs = x.numel() // x.shape[1] * module.k
    norms = sum(isinstance(m, torch.nn.modules.batchnorm._NormBase) for m in module.modules())
    return summed_fan_in(module) + norms * pairs


def search_rounding_bound(points: torch.Tensor, dtype=torch.float32,
                          bfloat16_parts: bool = False) -> float:
    """How far the true squared distances of neighbours found in ``dtype`` may exceed the best.

    A squared distance ``|q|^2 - 2 q.p + |p|^2`` over C channels of points within R of their
    centre (the search centres them first) is off by at most ``(C + 2) * eps * 4 R^2``; a
    neighbour can displace a nearer one only when both errors together bridge the gap.
    ``bfloat16_parts``: the search under a lowered float32 matmul precision, whose products sum
    six bfloat16 parts per channel, less terms below eps (7 (C + 2) terms in all).
    """
    centred = points.detach().double()
    centred = centred - centred.mean(dim=-2, keepdim=True)
    radius_squared = centred.pow(2).sum(-1).max()
    terms = (points.shape[-1] + 2) * (7 if bfloat16_parts else 1)
    return 2 * rounding_bound(terms, 4 * radius_squared, dtype)


def randomise_norms(module, seed=0):
    """Give every BN non-trivial affine parameters of both signs (the output BN starts at zero)."""
    gen = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            sign = torch.randint(0, 2, m.weight.shape, generator=gen) * 2 - 1
            m.weight.data = (torch.rand(m.weight.shape, generator=gen) + 0.5) * sign
            m.bias.data = torch.randn(m.bias.shape, generator=gen) * 0.1
    return module

"""The clip layout of the forward call in progress: how a batch of frames splits into clips.

A 2D backbone sees (N*T, C, H, W) frames; a module inside it that works on clips needs N. The
video wrapper around the backbone puts the call's :class:`ClipLayout` in scope with
:func:`clip_layout` and resets it after the call, so no module keeps it between calls (and
calls on several threads do not mix). :func:`keep_layout_for_recompute` carries it into backward
for blocks that activation checkpointing re-runs there.
"""
from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass
from typing import Iterator, Optional

import torch
from torch import nn

__all__ = ["ClipLayout", "clip_layout", "current_layout", "keep_layout_for_recompute"]


@dataclass(frozen=True)
class ClipLayout:
    """How the batch a video wrapper fed its backbone splits into clips, for one forward call.

    Attributes:
        num_clips: clips in the batch (N); it does not change inside a network.
        input_frames: frames per clip the wrapper fed (T at the input), for error messages.
    """

    num_clips: int
    input_frames: int


# The layout of the forward call in progress, per thread (and per asyncio task): set by the
# wrappers around their backbone call and reset after it, so no module keeps it between calls.
_CURRENT_LAYOUT: contextvars.ContextVar[Optional[ClipLayout]] = contextvars.ContextVar(
    "cp_plugin_clip_layout", default=None)


@contextlib.contextmanager
def clip_layout(root: nn.Module, layout: ClipLayout) -> Iterator[None]:
    """Run the modules below ``root`` on batches of ``layout`` inside this block.

    Under ``torch.compile`` (which can read a context variable but not set one) the layout is
    handed to the modules that read it (those with a ``traced_layout`` attribute) as that
    attribute instead, for the traced call only.
    """
    if torch.compiler.is_compiling():
        sites = [m for m in root.modules() if hasattr(m, "traced_layout")]
        for site in sites:
            site.traced_layout = layout
        try:
            yield
        finally:
            for site in sites:
                site.traced_layout = None
        return
    token = _CURRENT_LAYOUT.set(layout)
    try:
        yield
    finally:
        _CURRENT_LAYOUT.reset(token)


class _LayoutInBackward(torch.autograd.Function):
    """Identity whose backward puts the forward's layout back in scope for the rest of backward.

    Activation checkpointing re-runs blocks, and the sites in them, during backward, long after
    the wrapper's forward has reset the layout; this node restores it when backward reaches the
    wrapper's output and removes it when that backward pass ends.
    """

    @staticmethod
    def forward(ctx, layout: ClipLayout, tensor: torch.Tensor) -> torch.Tensor:
        ctx.layout = layout
        return tensor.view_as(tensor)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        current = _CURRENT_LAYOUT.get()
        if current is not None and current != ctx.layout:
            raise RuntimeError(
                f"two checkpointed video models with different clip layouts ({current} and "
                f"{ctx.layout}) share one backward pass; run backward for each separately or "
                f"turn grad checkpointing off in one of them")
        if current is not None:
            # Another output of the same call (a features model's maps) set it for this pass
            # already; a second token would be reset in the wrong order and leave it behind.
            return None, grad
        token = _CURRENT_LAYOUT.set(ctx.layout)

        def restore() -> None:
            try:
                _CURRENT_LAYOUT.reset(token)
            except ValueError:  # the pass ended on another thread (a GPU's): clear it there
                _CURRENT_LAYOUT.set(None)

        torch.autograd.Variable._execution_engine.queue_callback(restore)
        return None, grad


def keep_layout_for_recompute(output, layout: ClipLayout):
    """``output`` (a tensor, or a list/tuple/dict of them) with :class:`_LayoutInBackward` on
    every tensor that needs a gradient, for backbones whose blocks are recomputed in backward."""
    if isinstance(output, torch.Tensor):
        return _LayoutInBackward.apply(layout, output) if output.requires_grad else output
    if isinstance(output, dict):
        return {key: keep_layout_for_recompute(value, layout) for key, value in output.items()}
    if isinstance(output, (list, tuple)):
        return type(output)(keep_layout_for_recompute(value, layout) for value in output)
    return output


def current_layout(module: nn.Module) -> Optional[ClipLayout]:
    """The layout ``module`` runs under now: the call's, or (while torch.compile traces) the one
    :func:`clip_layout` handed to it as ``module.traced_layout``, else the call's (after a graph
    break dynamo runs the wrapper eagerly and may still trace the blocks); None outside any
    wrapper."""
    if torch.compiler.is_compiling():
        traced = getattr(module, "traced_layout", None)
        return _CURRENT_LAYOUT.get() if traced is None else traced
    return _CURRENT_LAYOUT.get()

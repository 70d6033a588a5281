"""Putting modules inside residual blocks of any backbone, by block name.

A residual block whose final activation is a submodule called exactly once, at the very end of
its forward (mmaction2's and timm's ResNet blocks), has two useful insertion points that do not
need its forward changed: just before that activation (after the residual add: CP's place) and
just after it (after the whole block: Non-local's place). Both are reached by replacing the
activation with an :class:`ActivationSite` that runs the inserted module next to it. The block's
own parameter names do not change, so checkpoints of the plain backbone still load.

Which block classes qualify is a registry of :class:`BlockSpec` per framework.
"""
from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from .layout import frames_to_video, split_frames, video_to_frames

POSITIONS = ("before_activation", "after_block")


@dataclass(frozen=True)
class BlockSpec:
    """How to insert into one residual-block class.

    Attributes:
        activation: attribute holding the block's final activation, called once at the end.
        out_channels: the block's output channels, read from a built block.
    """

    activation: str
    out_channels: Callable[[nn.Module], int]


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
    """Run the insertion sites below ``root`` on batches of ``layout`` inside this block.

    Under ``torch.compile`` (which cannot trace a context variable) the layout is handed to the
    sites as attributes instead, for the traced call only.
    """
    if torch.compiler.is_compiling():
        sites = list(insertion_sites(root))
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


class ActivationSite(nn.Module):
    """Stands in for a block's final activation and runs an inserted module beside it.

    ``before_activation`` computes ``act(module(x))``, ``after_block`` computes ``module(act(x))``.
    The module always sees video layout (N, C, T, H, W): a clip-major batch of frames
    (N*T, C, H, W) is viewed as video with the number of clips of the forward call in progress,
    which the owning wrapper puts in scope with :func:`clip_layout`. Nothing is stored between
    calls.

    Args:
        activation: the block's own final activation.
        module: the module to run beside it (``in_channels`` = the block's output channels).
        position: ``'before_activation'`` or ``'after_block'``.
        block_name: the block's name in its backbone (``'layer3.1'``), for error messages.
    """

    def __init__(self, activation: nn.Module, module: nn.Module, position: str,
                 block_name: str = "") -> None:
        super().__init__()
        if position not in POSITIONS:
            raise ValueError(f"position must be one of {POSITIONS}, got {position!r}")
        self.activation = activation
        self.module = module
        self.position = position
        self.block_name = block_name
        self.traced_layout: Optional[ClipLayout] = None  # set only while torch.compile traces

    def extra_repr(self) -> str:
        return f"position={self.position!r}, block_name={self.block_name!r}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.position == "after_block":
            return self._on_video(self.activation(x))
        return self.activation(self._on_video(x))

    def _layout(self) -> Optional[ClipLayout]:
        if torch.compiler.is_compiling():
            return self.traced_layout
        return _CURRENT_LAYOUT.get()

    def _on_video(self, x: torch.Tensor) -> torch.Tensor:
        layout = self._layout()
        if x.dim() == 5:
            self._check_frames(x.shape[2], layout)
            return self.module(x)
        if layout is None:
            raise RuntimeError(
                f"{type(self.module).__name__} in block {self.block_name!r} got a (N*T, C, H, W) "
                f"batch outside a video wrapper's forward, so it cannot tell which frames form a "
                f"clip; call the wrapper (VideoBackbone, CPBackbone, timm_adapters.VideoModel or "
                f"VideoFeatures), not its inner backbone.")
        video = frames_to_video(x, split_frames(x.shape[0], num_clips=layout.num_clips))
        self._check_frames(video.shape[2], layout)
        return video_to_frames(self.module(video))

    def _check_frames(self, num_frames: int, layout: Optional[ClipLayout]) -> None:
        if num_frames >= getattr(self.module, "min_frames", 1):
            return
        fed = f" from clips of {layout.input_frames} frames" if layout is not None else ""
        raise ValueError(
            f"{type(self.module).__name__} in block {self.block_name!r} got T={num_frames} "
            f"frame(s){fed}; it needs T >= {self.module.min_frames}. Feed longer clips, remove "
            f"the temporal striding or pooling before this block, or move the module to an "
            f"earlier block.")

    @property
    def original_activation(self) -> nn.Module:
        """The block's own activation, below any further sites stacked on this one."""
        activation = self.activation
        while isinstance(activation, ActivationSite):
            activation = activation.activation
        return activation


def find_blocks(root: nn.Module, specs: Mapping[type, BlockSpec],
                wrapper_names: Sequence[str] = ("net", "block")) -> Dict[str, Tuple[nn.Module, BlockSpec]]:
    """Blocks of ``root`` whose class has a spec, keyed by name (``'layer3.1'``).

    A block wrapped by another module (mmaction2's TSM ``TemporalShift.net``, ``NL3DWrapper.block``)
    keeps the name of the wrapper's slot, with the ``wrapper_names`` suffixes dropped.
    """
    found = {}
    for path, module in root.named_modules():
        spec = block_spec(module, specs)
        if spec is None:
            continue
        parts = path.split(".")
        while len(parts) > 1 and parts[-1] in wrapper_names:
            parts.pop()
        found.setdefault(".".join(parts), (module, spec))
    return found


def block_spec(module: nn.Module, specs: Mapping[type, BlockSpec]) -> Optional[BlockSpec]:
    """The spec of the most specific registered class ``module`` is an instance of, or None."""
    for cls in type(module).__mro__:
        if cls in specs:
            return specs[cls]
    return None


BlockSelection = Union[str, Mapping]


def insert_modules(root: nn.Module, blocks: Sequence[BlockSelection],
                   build: Callable[[int, dict], nn.Module], position: str,
                   specs: Mapping[type, BlockSpec]) -> List[ActivationSite]:
    """Insert ``build(out_channels, overrides)`` at ``position`` in each named block.

    Args:
        blocks: block names, or dicts ``dict(block='layer2.0', **overrides)`` whose other keys
            are passed to ``build`` for that block only.
        build: makes the module for a block from its output channels and the overrides.
        specs: the supported block classes.
    """
    if position not in POSITIONS:
        raise ValueError(f"position must be one of {POSITIONS}, got {position!r}")
    available = find_blocks(root, specs)
    if not available and blocks:
        raise ValueError(
            f"{type(root).__name__} has no residual block of a supported class "
            f"({', '.join(sorted(c.__name__ for c in specs))}); register its block class with "
            f"its final-activation attribute to insert modules into it.")
    sites = []
    for entry in blocks:
        name, overrides = split_block_entry(entry)
        if name not in available:
            raise ValueError(_unknown_block_message(root, name, available, specs))
        block, spec = available[name]
        activation = getattr(block, spec.activation)
        module = build(spec.out_channels(block), overrides)
        site = ActivationSite(activation, module, position, block_name=name)
        setattr(block, spec.activation, site)
        sites.append(site)
    return sites


def split_block_entry(entry: BlockSelection) -> Tuple[str, dict]:
    """``'layer3.1'`` or ``dict(block='layer3.1', **options)`` -> (name, options)."""
    if isinstance(entry, str):
        return entry, {}
    if isinstance(entry, Mapping) and isinstance(entry.get("block"), str):
        overrides = dict(entry)
        return overrides.pop("block"), overrides
    raise TypeError(
        f"each block entry must be a name such as 'layer3.1' or a dict with a 'block' name and "
        f"per-block options, got {entry!r}")


def _unknown_block_message(root: nn.Module, name: str, available: Mapping, specs: Mapping) -> str:
    valid = ", ".join(available) or "(none)"
    module = dict(root.named_modules()).get(name)
    if module is None:
        return f"{type(root).__name__} has no block named {name!r}; valid block names: {valid}"
    return (f"{name!r} is a {type(module).__name__}, not a supported residual block (supported: "
            f"{', '.join(sorted(c.__name__ for c in specs))}); modules go into blocks whose final "
            f"activation runs once at the end. Valid block names: {valid}")


def insertion_sites(root: nn.Module) -> Iterator[ActivationSite]:
    """Every :class:`ActivationSite` below ``root``."""
    return (m for m in root.modules() if isinstance(m, ActivationSite))


@contextlib.contextmanager
def sites_removed(root: nn.Module) -> Iterator[None]:
    """Temporarily put the original activations back, e.g. while the plain backbone initialises."""
    replaced = [(parent, name, child) for parent in root.modules()
                if not isinstance(parent, ActivationSite)
                for name, child in parent.named_children() if isinstance(child, ActivationSite)]
    try:
        for parent, name, site in replaced:
            setattr(parent, name, site.original_activation)
        yield
    finally:
        for parent, name, site in replaced:
            setattr(parent, name, site)

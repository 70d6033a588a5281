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
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from .layout import frames_to_video, video_to_frames

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


class ActivationSite(nn.Module):
    """Stands in for a block's final activation and runs an inserted module beside it.

    ``before_activation`` computes ``act(module(x))``, ``after_block`` computes ``module(act(x))``.
    The module always sees video layout (N, C, T, H, W): a clip-major batch of frames
    (N*T, C, H, W) is viewed as video using ``num_clips``, which the owning wrapper sets before
    every forward (T can change inside a network, the number of clips cannot).
    """

    def __init__(self, activation: nn.Module, module: nn.Module, position: str) -> None:
        super().__init__()
        if position not in POSITIONS:
            raise ValueError(f"position must be one of {POSITIONS}, got {position!r}")
        self.activation = activation
        self.module = module
        self.position = position
        self.num_clips: Optional[int] = None

    def extra_repr(self) -> str:
        return f"position={self.position!r}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.position == "after_block":
            return self._on_video(self.activation(x))
        return self.activation(self._on_video(x))

    def _on_video(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 5:
            return self.module(x)
        if self.num_clips is None:
            raise RuntimeError(
                f"{type(self.module).__name__} inside a 2D block got a (N*T, C, H, W) batch but "
                f"no clip count; run the backbone through its video wrapper, which sets "
                f"num_clips on every insertion site before the forward.")
        if x.shape[0] % self.num_clips:
            raise ValueError(
                f"a batch of {x.shape[0]} frames does not divide into num_clips={self.num_clips}")
        video = frames_to_video(x, x.shape[0] // self.num_clips)
        return video_to_frames(self.module(video))

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
        site = ActivationSite(activation, module, position)
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


def set_num_clips(root: nn.Module, num_clips: int) -> None:
    """Tell every site below ``root`` how many clips the next batch holds (kept afterwards:
    activation checkpointing re-runs the inserted modules during backward)."""
    for site in insertion_sites(root):
        site.num_clips = num_clips


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

"""Putting modules inside residual blocks of any backbone, by block name.

A residual block whose final activation is a submodule called exactly once, at the very end of
its forward (mmaction2's and timm's ResNet blocks), has two useful insertion points that do not
need its forward changed: just before that activation (after the residual add: CP's place) and
just after it (after the whole block: Non-local's place). Both are reached by replacing the
activation with an :class:`ActivationSite` that runs the inserted module next to it. The block's
own parameter names do not change, so checkpoints of the plain backbone still load.

A block that ends with its residual add (pre-activation designs) has one such point, its
output: the site then stands in for the whole block in its parent and runs the module after it.
Which block classes qualify, and how each ends, is the one table of :mod:`cp_plugin.blocks`.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from .blocks import BlockSpec, Refusal, UnsupportedBlockError, block_entry
from .call_layout import ClipLayout, current_layout
from .layout import frames_to_video, video_to_frames
from .state_dict import hide_child_in_state_dict

POSITIONS = ("before_activation", "after_block")


class ActivationSite(nn.Module):
    """Stands in for a block's final activation (or, for a block that ends with its residual
    add, for the whole block) and runs an inserted module beside it.

    ``before_activation`` computes ``act(module(x))``, ``after_block`` computes ``module(act(x))``.
    The module always sees video layout (N, C, T, H, W): a clip-major batch of frames
    (N*T, C, H, W) is viewed as video with the number of clips of the forward call in progress,
    which the owning wrapper puts in scope with :func:`cp_plugin.call_layout.clip_layout`.
    Nothing is stored between calls.

    Args:
        activation: the block's own final activation (or the block itself, ``'after_block'``).
        module: the module to run beside it (``in_channels`` = the block's output channels).
        position: ``'before_activation'`` or ``'after_block'``.
        block_name: the block's name in its backbone (``'layer3.1'``), for error messages.

    Shape:
        - Input: what the block's activation gets: (N*T, C, H, W) frames inside a video
          wrapper's forward, or (N, C, T, H, W) clips.
        - Output: the same shape.

    Examples::

        >>> from cp_plugin import CPModule
        >>> from cp_plugin.call_layout import ClipLayout, clip_layout
        >>> site = ActivationSite(nn.ReLU(), CPModule(8, k=2), "before_activation", "layer1.0")
        >>> with clip_layout(site, ClipLayout(num_clips=2, input_frames=3)):
        ...     site(torch.randn(6, 8, 4, 4)).shape
        torch.Size([6, 8, 4, 4])
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

    def _on_video(self, x: torch.Tensor) -> torch.Tensor:
        layout = current_layout(self)
        if x.dim() == 5:
            self._check_frames(x.shape[2], layout)
            return self.module(x)
        if layout is None:
            raise RuntimeError(
                f"{type(self.module).__name__} in block {self.block_name!r} got a (N*T, C, H, W) "
                f"batch outside a video wrapper's forward, so it cannot tell which frames form a "
                f"clip; call the wrapper (VideoBackbone, CPBackbone, timm_adapters.VideoModel or "
                f"VideoFeatures), not its inner backbone.")
        video = frames_to_video(x, num_clips=layout.num_clips)
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
        """The block's own activation (or the block), below any sites stacked on this one."""
        activation = self.activation
        while isinstance(activation, ActivationSite):
            activation = activation.activation
        return activation


@dataclass(frozen=True)
class FoundBlock:
    """A supported block of a model, and the attribute a site replaces to reach its place.

    Attributes:
        name: the name users give it (``'layer3.1'``).
        module: the block.
        spec: its table entry.
        owner: the module whose attribute ``slot`` becomes the site: the block itself (its final
            activation), or the block's parent for a block that ends with its residual add.
        slot: that attribute's name.
    """

    name: str
    module: nn.Module
    spec: BlockSpec
    owner: nn.Module
    slot: str


#: Attributes through which a wrapper holds a block (mmaction2's TSM ``TemporalShift.net``,
#: ``NL3DWrapper.block``); a block keeps the name of the wrapper's slot.
WRAPPER_ATTRIBUTES = ("net", "block")


def find_blocks(root: nn.Module) -> Dict[str, FoundBlock]:
    """The blocks of ``root`` whose class the table supports, by name (``'layer3.1'``)."""
    modules = dict(root.named_modules())
    found: Dict[str, FoundBlock] = {}
    for path, module in modules.items():
        spec = block_entry(module)
        if not isinstance(spec, BlockSpec) or not path:
            continue
        parts = path.split(".")
        # The owner of the block's output: up past any sites that already wrap the block.
        owner_path, slot = parts[:-1], parts[-1]
        while owner_path and isinstance(modules[".".join(owner_path)], ActivationSite):
            owner_path, slot = owner_path[:-1], owner_path[-1]
        name_parts = owner_path + [slot]
        while len(name_parts) > 1 and name_parts[-1] in WRAPPER_ATTRIBUTES:
            name_parts.pop()
        if spec.activation is None:
            owner = modules[".".join(owner_path)]
        else:
            owner, slot = module, spec.activation
        found.setdefault(".".join(name_parts), FoundBlock(".".join(name_parts), module, spec,
                                                         owner, slot))
    return found


def select_blocks(root: nn.Module, names: Sequence[str], what: str = "a module"
                  ) -> Dict[str, FoundBlock]:
    """The named blocks of ``root``, or :class:`UnsupportedBlockError` (a ``ValueError``) saying
    why one cannot take ``what`` (``'a CP module'``) after its residual add."""
    available = find_blocks(root)
    modules = dict(root.named_modules())
    chosen = {}
    for name in names:
        if name in available:
            block = available[name]
            reason = block.spec.check(block.module) if block.spec.check else None
            if reason:
                raise unsupported_block(name, block.module, what, reason,
                                        "Choose another block of the stage.")
            chosen[name] = block
            continue
        valid = ", ".join(available) or "(none)"
        module = modules.get(name)
        if module is None and not available:
            raise ValueError(
                f"{type(root).__name__} has no residual block of a supported class, so it has "
                f"no block named {name!r}; register its block class with "
                f"cp_plugin.register_block(BlockClass, activation='<attr>') to insert modules.")
        if module is None:
            raise ValueError(f"{type(root).__name__} has no block named {name!r}; valid block "
                             f"names: {valid}")
        entry = block_entry(module)
        if isinstance(entry, Refusal):
            raise unsupported_block(name, module, what, entry.reason, entry.fix)
        cls = type(module).__name__
        raise unsupported_block(
            name, module, what, f"{cls} is not a registered residual-block class",
            f"If its final activation is a module of its own called once at the end, register it "
            f"with cp_plugin.register_block({cls}, activation='<attr>'); otherwise choose among: "
            f"{valid}.")
    return chosen


def unsupported_block(name: str, block: nn.Module, what: str, reason: str,
                      fix: str) -> UnsupportedBlockError:
    """The error for a block that cannot take ``what``: names the block, its class and the fix."""
    cls = type(block)
    return UnsupportedBlockError(
        f"block {name!r} ({cls.__module__}.{cls.__qualname__}) cannot take {what}: {reason}. "
        f"Modules go after the residual add: before the block's final activation, which must "
        f"be a module of its own called exactly once, or after a block that ends with the add. "
        f"{fix}")


BlockSelection = Union[str, Mapping]
#: ``probe(root, blocks)`` -> the output channels of each chosen block, measured.
ChannelProbe = Callable[[nn.Module, Dict[str, FoundBlock]], Dict[str, int]]


def insert_modules(root: nn.Module, blocks: Sequence[BlockSelection],
                   build: Callable[[int, dict], nn.Module], position: str = "before_activation",
                   probe: Optional[ChannelProbe] = None,
                   what: str = "a module") -> List[ActivationSite]:
    """Insert ``build(out_channels, overrides)`` at ``position`` in each named block.

    Every module is built before any goes in, so a bad name or option leaves ``root`` unchanged.

    Args:
        blocks: block names, or dicts ``dict(block='layer2.0', **overrides)`` whose other keys
            are passed to ``build`` for that block only.
        build: makes the module for a block from its output channels and the overrides.
        position: ``'before_activation'`` (after the residual add: CP's place) or
            ``'after_block'`` (Non-local's); the same place in a block that ends with its add.
        probe: measures the chosen blocks' output channels (for table entries without
            ``out_channels``).
        what: what is inserted, for error messages (``'a CP module'``).
    """
    if position not in POSITIONS:
        raise ValueError(f"position must be one of {POSITIONS}, got {position!r}")
    entries = [split_block_entry(entry) for entry in blocks]
    names = [name for name, _ in entries]
    if len(set(names)) != len(names):
        raise ValueError(f"blocks names a block more than once: {names}")
    chosen = select_blocks(root, names, what)
    channels = probe(root, chosen) if probe is not None else {
        name: _out_channels(block) for name, block in chosen.items()}
    modules = [build(channels[name], overrides) for name, overrides in entries]
    for name, module in zip(names, modules):
        _check_free(chosen[name], module)
    sites = []
    for name, module in zip(names, modules):
        block = chosen[name]
        wraps_block = block.spec.activation is None
        site = ActivationSite(getattr(block.owner, block.slot), module,
                              "after_block" if wraps_block else position, block_name=name)
        if wraps_block:  # the block's own keys stay where they were in state dicts
            hide_child_in_state_dict(site, "activation")
        setattr(block.owner, block.slot, site)
        sites.append(site)
    return sites


def _out_channels(block: FoundBlock) -> int:
    if block.spec.out_channels is None:
        raise ValueError(
            f"the table entry of {type(block.module).__name__} (block {block.name!r}) gives no "
            f"out_channels and no probe measured them; register it with out_channels=")
    return block.spec.out_channels(block.module)


def _check_free(block: FoundBlock, module: nn.Module) -> None:
    current = getattr(block.owner, block.slot)
    if block.spec.activation is None and isinstance(current, ActivationSite):
        # A second site would hide the first one's keys as well as the block's.
        raise ValueError(f"block {block.name!r} already has a module after it "
                         f"({type(current.module).__name__}); it takes one")
    while isinstance(current, ActivationSite):
        if type(current.module) is type(module):
            raise ValueError(f"block {block.name!r} already has a {type(module).__name__} "
                             f"inserted")
        current = current.activation


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


def insertion_sites(root: nn.Module) -> Iterator[ActivationSite]:
    """Every :class:`ActivationSite` below ``root``."""
    return (m for m in root.modules() if isinstance(m, ActivationSite))


@contextlib.contextmanager
def sites_removed(root: nn.Module) -> Iterator[None]:
    """Temporarily put the original activations (or blocks) back, e.g. while the plain backbone
    initialises or a probe runs it."""
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

"""Which residual-block classes can take an inserted module, and where: one table for all frameworks.

CP goes after a block's residual add. Two block designs offer that place without any change to
the block's forward:

* blocks ending ``act(out + identity)`` whose final activation is a submodule of its own, called
  once, last (mmaction2's and timm's ResNet blocks): the module runs just before that activation
  (CP's place) or just after it (Non-local's place, after the whole block);
* pre-activation blocks, which end with the residual add itself: the module runs on the block's
  output (both places are the same there).

Each framework's glue registers its block families here with :func:`register_block`; well-known
blocks that do not qualify (a shared activation, no residual add) are entries of the same table,
made with :func:`refuse_block`, so that the error says why and what to use instead.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional, Union

from torch import nn

__all__ = ["BlockSpec", "Refusal", "UnsupportedBlockError", "block_entry", "refuse_block",
           "register_block", "supported_blocks"]


class UnsupportedBlockError(ValueError):
    """A block that cannot take a module after its residual add; the message says why."""


@dataclass(frozen=True)
class BlockSpec:
    """How a residual-block class ends.

    Attributes:
        activation: attribute holding the final activation, called once right after the residual
            add; ``None`` for a block that ends with the add itself (pre-activation designs).
        out_channels: ``out_channels(block)``, the block's output channels; ``None`` where the
            framework's glue measures them with a probe forward (timm).
        on_frames: the block runs on batches of frames (N*T, C, H, W) (2D backbones), not on
            clips (N, C, T, H, W) (3D backbones).
        check: ``check(block)``, why an instance has no residual add (a block built without a
            shortcut), or None.
    """

    activation: Optional[str]
    out_channels: Optional[Callable[[nn.Module], int]] = None
    on_frames: bool = True
    check: Optional[Callable[[nn.Module], Optional[str]]] = None


@dataclass(frozen=True)
class Refusal:
    """Why a block class cannot take a module after its residual add, and what to do instead."""

    reason: str
    fix: str


_TABLE: Dict[type, Union[BlockSpec, Refusal]] = {}


def _check_class(block_class) -> None:
    if not isinstance(block_class, type) or not issubclass(block_class, nn.Module):
        raise TypeError(f"block_class must be an nn.Module subclass, got {block_class!r}")


def register_block(block_class: type, activation: Optional[str], *,
                   out_channels: Optional[Callable[[nn.Module], int]] = None,
                   on_frames: bool = True,
                   check: Optional[Callable[[nn.Module], Optional[str]]] = None) -> BlockSpec:
    """Let modules go into another residual-block class (subclasses included).

    Args:
        block_class: the block's class.
        activation: attribute of its final activation, a module of its own called exactly once
            per forward, right after the residual add (checked per block where the framework
            can); ``None`` if the block ends with the residual add (pre-activation designs).
        out_channels: ``out_channels(block)`` -> the block's output channels, if the framework
            does not measure them.
        on_frames: the block runs on (N*T, C, H, W) frames (2D), not on clips (3D).
        check: ``check(block)`` -> why an instance has no residual add, or None.

    Examples::

        >>> from torch import nn
        >>> class AddThenAct(nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.conv, self.act = nn.Conv2d(8, 8, 3, padding=1), nn.ReLU()
        ...     def forward(self, x):
        ...         return self.act(self.conv(x) + x)
        >>> spec = register_block(AddThenAct, "act", out_channels=lambda b: b.conv.out_channels)
    """
    _check_class(block_class)
    if activation is not None and (not isinstance(activation, str) or not activation.isidentifier()):
        raise ValueError(f"activation must be the attribute name of the block's final "
                         f"activation, such as 'act3', or None for a block that ends with its "
                         f"residual add; got {activation!r}")
    spec = BlockSpec(activation, out_channels, bool(on_frames), check)
    _TABLE[block_class] = spec
    return spec


def refuse_block(block_class: type, reason: str, fix: str) -> Refusal:
    """Make insertion into ``block_class`` fail with ``reason`` and suggest ``fix``."""
    _check_class(block_class)
    refusal = Refusal(reason, fix)
    _TABLE[block_class] = refusal
    return refusal


def block_entry(module: nn.Module) -> Union[BlockSpec, Refusal, None]:
    """The table's entry for the most specific registered class of ``module``, or None."""
    for cls in type(module).__mro__:
        entry = _TABLE.get(cls)
        if entry is not None:
            return entry
    return None


def supported_blocks() -> Dict[type, BlockSpec]:
    """The registered block classes that can take modules, and how each ends (a copy)."""
    return {cls: entry for cls, entry in _TABLE.items() if isinstance(entry, BlockSpec)}

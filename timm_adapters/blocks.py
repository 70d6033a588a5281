"""Which timm residual blocks can take a CP module, and :func:`insert_cp` to put them there.

CP goes after a block's residual add and before its final activation. That place can be reached
without changing the block's forward only when the final activation is a module of its own,
called exactly once, last. A registry says which block classes are built like that (and which
well-known ones are not, with the reason); a one-image probe forward then checks every chosen
block instance, because the same class can differ per instance (blocks without a shortcut).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import timm.models.byobnet as byobnet
import timm.models.dla as dla
import timm.models.nfnet as nfnet
import timm.models.regnet as regnet
import timm.models.res2net as res2net
import timm.models.resnest as resnest
import timm.models.resnet as resnet
import timm.models.resnetv2 as resnetv2
import timm.models.senet as senet
import timm.models.sknet as sknet
import timm.models.tresnet as tresnet
import torch
import torchvision.models.resnet as tv_resnet
from timm.layers import register_notrace_module
from torch import nn

from cp_plugin.cp_module import CPModule
from cp_plugin.insertion import (ActivationSite, BlockSpec, insert_modules, sites_removed,
                                 split_block_entry)
from cp_plugin.presets import CP_PRESETS, resolve_placement

from .video import _ClipsAsFrames

# timm's FX feature extraction (feature_cls='fx') must keep the site a leaf: its shape
# arithmetic and the per-call clip layout cannot be frozen into a traced graph.
register_notrace_module(ActivationSite)
register_notrace_module(CPModule)

#: Side of the square image used by the probe forward.
PROBE_SIZE = 64

CP_OPTIONS = tuple(inspect.signature(CPModule.__init__).parameters)[2:]  # after self, in_channels


class UnsupportedBlockError(ValueError):
    """A block that cannot take a CP module after its residual add; the message says why."""


@dataclass(frozen=True)
class TimmBlock:
    """How a residual-block class ends.

    Attributes:
        activation: attribute of the final activation, called once after the residual add.
        check: optional ``check(block) -> reason or None`` for instances of the class that have
            no residual add (e.g. blocks built without a shortcut).
    """

    activation: str
    check: Optional[Callable[[nn.Module], Optional[str]]] = None


@dataclass(frozen=True)
class Refusal:
    """Why a block class cannot take CP, and what to do instead."""

    reason: str
    fix: str


_NO_ADD = ("no residual add: the block changes shape and was built without a shortcut "
           "(`{attr}` is None), so it has no place 'after the residual add'")


def _needs(attr: str) -> Callable[[nn.Module], Optional[str]]:
    def check(block: nn.Module) -> Optional[str]:
        return _NO_ADD.format(attr=attr) if getattr(block, attr) is None else None
    return check


_SUPPORTED: Dict[type, TimmBlock] = {
    resnet.BasicBlock: TimmBlock("act2"),
    resnet.Bottleneck: TimmBlock("act3"),
    sknet.SelectiveKernelBasic: TimmBlock("act"),
    sknet.SelectiveKernelBottleneck: TimmBlock("act"),
    resnest.ResNestBottleneck: TimmBlock("act3"),
    # The add happens only `if self.downsample is not None` (first blocks of regnetz stages).
    regnet.Bottleneck: TimmBlock("act3", _needs("downsample")),
    tresnet.BasicBlock: TimmBlock("act"),
    tresnet.Bottleneck: TimmBlock("act"),
    resnetv2.Bottleneck: TimmBlock("act3"),  # the post-activation block of resnetv2.py
    **{cls: TimmBlock("act", _needs("shortcut"))
       for cls in (byobnet.BasicBlock, byobnet.BottleneckBlock, byobnet.DarkBlock,
                   byobnet.EdgeBlock, byobnet.SelfAttnBlock)},
}

_TIMM_FIX = ("Use a timm model whose blocks end in their own activation (resnet*, resnext*, "
             "seresnet*, ecaresnet*, skresnet*, resnest*, regnetx/y*), or choose other blocks.")
_TORCHVISION_FIX = ("Use timm's ResNet of the same depth instead (timm ships torchvision's "
                    "ImageNet weights for it, e.g. 'resnet50.tv_in1k'), or the mmaction2 backbone "
                    "(cp_plugin's CPBackbone).")
_SHARED = ("shared activation: one `relu` module runs {where}, so a CP module put in its place "
           "would run at each of those calls")

_REFUSED: Dict[type, Refusal] = {
    tv_resnet.BasicBlock: Refusal(
        _SHARED.format(where="after conv1 and again after the residual add"),
        _TORCHVISION_FIX),
    tv_resnet.Bottleneck: Refusal(
        _SHARED.format(where="after conv1, after conv2 and after the residual add"),
        _TORCHVISION_FIX),
    res2net.Bottle2neck: Refusal(
        _SHARED.format(where="after conv1, in every scale branch and after the residual add"),
        _TIMM_FIX),
    senet.Bottleneck: Refusal(  # legacy_seresnet*/legacy_seresnext*/legacy_senet154
        _SHARED.format(where="after each conv and again after the residual add"),
        "Use timm's seresnet*/seresnext* models instead of legacy_*: same architecture, with a "
        "separate final activation."),
    senet.SEResNetBlock: Refusal(
        _SHARED.format(where="after conv1 and again after the residual add"),
        "Use timm's seresnet18/seresnet34 instead of legacy_seresnet*: same architecture, with "
        "a separate final activation."),
    resnetv2.PreActBasic: Refusal(
        "pre-activation block: it ends with the residual add and has no activation after it",
        _TIMM_FIX),
    resnetv2.PreActBottleneck: Refusal(
        "pre-activation block: it ends with the residual add and has no activation after it",
        _TIMM_FIX),
    regnet.PreBottleneck: Refusal(
        "pre-activation block (regnetv_*): it ends with the residual add and has no activation "
        "after it", _TIMM_FIX),
    nfnet.NormFreeBlock: Refusal(
        "pre-activation block: it ends with the residual add and has no activation after it",
        _TIMM_FIX),
    byobnet.RepVggBlock: Refusal(
        "no separate residual add: the identity branch is one of several summed branches "
        "(and vanishes when re-parameterised)", _TIMM_FIX),
    byobnet.MobileOneBlock: Refusal(
        "no separate residual add: the identity branch is one of several summed branches "
        "(and vanishes when re-parameterised)", _TIMM_FIX),
    **{cls: Refusal(_SHARED.format(where="after the inner convs and after the residual add"),
                    _TIMM_FIX)
       for cls in (dla.DlaBasic, dla.DlaBottleneck, dla.DlaBottle2neck)},
}


def register_block(block_class: type, activation: str,
                   check: Optional[Callable[[nn.Module], Optional[str]]] = None) -> None:
    """Let CP modules go into another residual-block class.

    Args:
        block_class: the block's class; subclasses are covered too.
        activation: attribute holding its final activation, a module of its own called exactly
            once per forward, right after the residual add (checked per block at insertion).
        check: optional ``check(block)`` returning why an instance has no residual add, or None.
    """
    if not isinstance(block_class, type) or not issubclass(block_class, nn.Module):
        raise TypeError(f"block_class must be an nn.Module subclass, got {block_class!r}")
    if not isinstance(activation, str) or not activation.isidentifier():
        raise ValueError(f"activation must be the attribute name of the block's final "
                         f"activation, such as 'act3', got {activation!r}")
    _REFUSED.pop(block_class, None)
    _SUPPORTED[block_class] = TimmBlock(activation, check)


def refuse_block(block_class: type, reason: str, fix: str) -> None:
    """Make :func:`insert_cp` refuse a block class with ``reason`` and suggest ``fix``."""
    _SUPPORTED.pop(block_class, None)
    _REFUSED[block_class] = Refusal(reason, fix)


def supported_blocks() -> Dict[type, TimmBlock]:
    """The registered block classes and how each ends (a copy)."""
    return dict(_SUPPORTED)


def _lookup(block: nn.Module) -> Union[TimmBlock, Refusal, None]:
    """The registry entry of the most specific registered class of ``block``."""
    for cls in type(block).__mro__:
        entry = _SUPPORTED.get(cls) or _REFUSED.get(cls)
        if entry is not None:
            return entry
    return None


def _refuse(name: str, block: nn.Module, reason: str, fix: str) -> UnsupportedBlockError:
    cls = type(block)
    return UnsupportedBlockError(
        f"block {name!r} ({cls.__module__}.{cls.__qualname__}) cannot take a CP module: {reason}. "
        f"CP goes after the residual add and before the block's final activation, which must be "
        f"a module of its own called exactly once. {fix}")


def candidate_blocks(model: nn.Module) -> List[str]:
    """Names of the blocks of ``model`` whose class is registered as supported."""
    return [name for name, module in model.named_modules()
            if isinstance(_lookup(module), TimmBlock)]


BlockList = Union[str, Sequence[Union[str, Mapping]], None]


def insert_cp(model: nn.Module, blocks: BlockList, **cp_cfg) -> Dict[str, CPModule]:
    """Put a :class:`cp_plugin.CPModule` after the residual add of each named block.

    Args:
        model: a timm model (classifier or ``features_only``), modified in place; or a
            :class:`timm_adapters.VideoModel`, whose image model is.
        blocks: a preset name (``'resnet18'``, ``'resnet18-6cp'``, ``'resnet34'``,
            ``'resnet50'``, ``'resnet101'``: the authors' placements), or a list of block names
            such as ``'layer3.1'`` (``'s3.b2'`` in RegNets), each possibly
            ``dict(block=name, **options)`` with options for that block only.
        **cp_cfg: CPModule options for every module (``k``, ``mlp_channels``,
            ``bottleneck_channels``, ``shrink``, ``knn_chunk_size``), over the preset's defaults;
            per-block options win over both.

    Returns:
        The inserted modules by block name. Their state-dict keys are
        ``<block>.<activation>.module.*``; the block's own keys do not change.

    Raises:
        UnsupportedBlockError: a named block cannot take CP (shared or missing final activation,
            pre-activation design, no residual add); the model is left unchanged.

    The inserted modules see (N*T, C, H, W) frames and split them into clips using the layout
    that :class:`timm_adapters.VideoModel` puts in scope for each of its forward calls.
    """
    if isinstance(model, _ClipsAsFrames):  # a VideoModel: insert into its image model
        model = model.backbone
    entries, defaults = resolve_placement(blocks, CP_PRESETS, "blocks")
    split = [split_block_entry(entry) for entry in entries]
    names = [name for name, _ in split]
    options = [{**defaults, **cp_cfg, **overrides} for _, overrides in split]
    for opts in options:
        _check_options(opts)
    if len(set(names)) != len(names):
        raise ValueError(f"blocks names a block more than once: {names}")

    modules = dict(model.named_modules())
    chosen: Dict[str, Tuple[nn.Module, str]] = {}
    for name in names:
        if name not in modules:
            raise ValueError(f"{type(model).__name__} has no module named {name!r}; blocks that "
                             f"can take CP: {', '.join(candidate_blocks(model)) or '(none)'}")
        block = modules[name]
        entry = _lookup(block)
        if isinstance(entry, Refusal):
            raise _refuse(name, block, entry.reason, entry.fix)
        if entry is None:
            raise _refuse(
                name, block, f"{type(block).__name__} is not a registered residual-block class",
                f"If its final activation is such a module, register it with "
                f"timm_adapters.register_block({type(block).__name__}, activation='<attr>'); "
                f"otherwise choose among: {', '.join(candidate_blocks(model)) or '(none)'}.")
        reason = entry.check(block) if entry.check else None
        if reason:
            raise _refuse(name, block, reason, "Choose another block of the stage.")
        current = getattr(block, entry.activation)
        while isinstance(current, ActivationSite):
            if isinstance(current.module, CPModule):
                raise ValueError(f"block {name!r} already has a CP module")
            current = current.activation
        chosen[name] = (block, entry.activation)

    channels = probe_blocks(model, chosen)
    # Build every module before inserting any, so a bad option leaves the model unchanged.
    built = [CPModule(channels[name], **opts) for name, opts in zip(names, options)]
    for name, module in zip(names, built):
        reference = next(chosen[name][0].parameters(), None)
        if reference is not None:
            module.to(device=reference.device, dtype=reference.dtype)
    # insert_modules asks for one module per name, in order: hand over the built ones.
    pending = iter(built)
    by_block = {id(chosen[name][0]): channels[name] for name in names}
    specs = {type(block): BlockSpec(attr, lambda b: by_block[id(b)])
             for block, attr in chosen.values()}
    insert_modules(model, names, lambda _channels, _overrides: next(pending),
                   "before_activation", specs)
    return dict(zip(names, built))


def _check_options(options: Mapping) -> None:
    unknown = sorted(set(options) - set(CP_OPTIONS))
    if unknown:
        raise TypeError(f"unknown CPModule option(s) {unknown}; valid options: "
                        f"{', '.join(CP_OPTIONS)}")


def probe_blocks(model: nn.Module, blocks: Mapping[str, Tuple[nn.Module, str]]) -> Dict[str, int]:
    """Check with one image that each block's activation runs once per block call, last.

    Args:
        blocks: ``{name: (block, activation attribute)}``.

    Returns:
        The channels entering each activation (the CP module's ``in_channels``).

    The forward runs in eval mode without gradients on a zero image and with any earlier
    insertions taken out, so it changes no weights, statistics or modes.
    """
    if not blocks:
        return {}
    stats = {name: dict(block_calls=0, act_calls=0, channels=0, last=True, out=None)
             for name in blocks}
    handles = []
    modes = [(m, m.training) for m in model.modules()]
    try:
        with sites_removed(model), torch.no_grad():
            for name, (block, attr) in blocks.items():
                handles += _count_calls(block, getattr(block, attr), stats[name])
            model.eval()
            try:
                model(_probe_input(model))
            except Exception as error:
                raise RuntimeError(
                    f"could not run {type(model).__name__} on a (1, C, {PROBE_SIZE}, "
                    f"{PROBE_SIZE}) probe image to check the chosen blocks: {error}") from error
    finally:
        for handle in handles:
            handle.remove()
        for module, mode in modes:
            module.training = mode

    for name, s in stats.items():
        block, attr = blocks[name]
        if s["block_calls"] == 0:
            raise _refuse(name, block, "the block never runs in this model's forward",
                          "Choose a block the model uses.")
        if s["act_calls"] != s["block_calls"]:
            raise _refuse(
                name, block, f"shared activation: `{attr}` ran {s['act_calls']} time(s) during "
                f"{s['block_calls']} call(s) of the block", "Choose another block.")
        if not s["last"]:
            raise _refuse(name, block, f"`{attr}` is not the last step of the block (its output "
                          f"is not the block's output)", "Choose another block.")
    return {name: s["channels"] for name, s in stats.items()}


def _count_calls(block: nn.Module, activation: nn.Module, stat: dict) -> list:
    def before_act(module, args):
        stat["act_calls"] += 1
        stat["channels"] = args[0].shape[1]

    def after_act(module, args, output):
        stat["out"] = output

    def after_block(module, args, output):
        stat["block_calls"] += 1
        # In-place and identity activations return their input object, so identity of the
        # objects (not equality of values) tells whether the activation's output is returned.
        stat["last"] = stat["last"] and output is stat["out"]

    return [activation.register_forward_pre_hook(before_act),
            activation.register_forward_hook(after_act),
            block.register_forward_hook(after_block)]


def _probe_input(model: nn.Module) -> torch.Tensor:
    channels = getattr(model, "in_chans", None)  # timm models keep it
    if not isinstance(channels, int):  # e.g. timm's features_only wrappers: ask the stem
        first_conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
        channels = first_conv.in_channels if first_conv is not None else 3
    reference = next(model.parameters(), None)
    kwargs = {} if reference is None else dict(device=reference.device, dtype=reference.dtype)
    return torch.zeros(1, channels, PROBE_SIZE, PROBE_SIZE, **kwargs)

"""The timm (and torchvision) residual blocks that can take a CP module, and those that cannot, as data.

Importing this module enters each of them in cp_plugin's one block table
(:mod:`cp_plugin.blocks`); ``timm_adapters`` imports it.
"""
from __future__ import annotations

from typing import Callable, Dict, Optional, Tuple

import timm.models._efficientnet_blocks as efficientnet_blocks
import timm.models.byobnet as byobnet
import timm.models.convnext as convnext
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
import torchvision.models.resnet as tv_resnet
from timm.layers import register_notrace_module
from torch import nn

from cp_plugin.blocks import Refusal, refuse_block, register_block
from cp_plugin.cp_module import CPModule
from cp_plugin.insertion import ActivationSite

_NO_ADD = ("no residual add: the block changes shape and was built without a shortcut "
           "(`{attr}` is None), so it has no place 'after the residual add'")


def _needs(attr: str) -> Callable[[nn.Module], Optional[str]]:
    def check(block: nn.Module) -> Optional[str]:
        return _NO_ADD.format(attr=attr) if getattr(block, attr) is None else None
    return check


def _needs_skip(block: nn.Module) -> Optional[str]:
    if block.has_skip:
        return None
    return ("no residual add: the block changes shape or stride, or was built with noskip "
            "(`has_skip` is False), so it has no place 'after the residual add'")


#: Block class -> (final activation attribute, or None for a block that ends with its residual
#: add, so CP goes on its output; per-instance check). Output channels are measured by the
#: probe forward (:mod:`.probe`), which also checks each chosen instance.
SUPPORTED: Dict[type, Tuple[Optional[str], Optional[Callable[[nn.Module], Optional[str]]]]] = {
    resnet.BasicBlock: ("act2", None),
    resnet.Bottleneck: ("act3", None),
    sknet.SelectiveKernelBasic: ("act", None),
    sknet.SelectiveKernelBottleneck: ("act", None),
    resnest.ResNestBottleneck: ("act3", None),
    # The add happens only `if self.downsample is not None` (first blocks of regnetz stages).
    regnet.Bottleneck: ("act3", _needs("downsample")),
    tresnet.BasicBlock: ("act", None),
    tresnet.Bottleneck: ("act", None),
    resnetv2.Bottleneck: ("act3", None),  # the post-activation block of resnetv2.py
    **{cls: ("act", _needs("shortcut"))
       for cls in (byobnet.BasicBlock, byobnet.BottleneckBlock, byobnet.DarkBlock,
                   byobnet.EdgeBlock, byobnet.SelfAttnBlock)},
    # Blocks that end with the residual add (no activation after it).
    convnext.ConvNeXtBlock: (None, None),  # convnext*, convnextv2*
    resnetv2.PreActBasic: (None, None),  # resnetv2_*, the pre-activation ResNets
    resnetv2.PreActBottleneck: (None, None),
    regnet.PreBottleneck: (None, _needs("downsample")),  # regnetv_*
    nfnet.NormFreeBlock: (None, None),  # nfnet*, nf_resnet*
    # efficientnet*, mobilenetv2/3/4*, mixnet*...: the add happens only `if self.has_skip`.
    **{cls: (None, _needs_skip)
       for cls in (efficientnet_blocks.DepthwiseSeparableConv,
                   efficientnet_blocks.InvertedResidual,  # CondConvResidual too
                   efficientnet_blocks.UniversalInvertedResidual,
                   efficientnet_blocks.EdgeResidual)},
}

_TIMM_FIX = ("Use a timm model whose blocks end in their own activation (resnet*, resnext*, "
             "seresnet*, skresnet*, resnest*, regnetx/y*) or with their residual add "
             "(convnext*, resnetv2_*, regnetv_*, nfnet*, efficientnet*, mobilenetv2/3/4*), or "
             "choose other blocks.")
_TORCHVISION_FIX = ("Use timm's ResNet of the same depth instead (timm ships torchvision's "
                    "ImageNet weights for it, e.g. 'resnet50.tv_in1k'), or the mmaction2 backbone "
                    "(cp_plugin's CPBackbone).")
_SHARED = ("shared activation: one `relu` module runs {where}, so a CP module put in its place "
           "would run at each of those calls")

#: Block class -> why it cannot take CP, and what to use instead.
REFUSED: Dict[type, Refusal] = {
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


for _cls, (_activation, _check) in SUPPORTED.items():
    register_block(_cls, _activation, check=_check)
for _cls, _refusal in REFUSED.items():
    refuse_block(_cls, _refusal.reason, _refusal.fix)

# timm's FX feature extraction (feature_cls='fx') must keep the site a leaf: its shape
# arithmetic and the per-call clip layout cannot be frozen into a traced graph.
register_notrace_module(ActivationSite)
register_notrace_module(CPModule)

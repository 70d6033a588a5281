"""timm model names for CPNets (``cpnet_resnet18`` ...), and :func:`create_video_model` for any.

After ``import timm_adapters``::

    model = timm.create_model('cpnet_resnet18', num_classes=400, cp_k=8)
    model = timm_adapters.create_video_model('seresnet50', cp_blocks='resnet50', num_classes=174)

ImageNet initialisation from a local file, with no hub access, uses timm's own mechanism:
``pretrained=True, pretrained_cfg_overlay=dict(file='resnet18.pth')``. The image model loads it
first; CP modules are inserted afterwards and start as identities, so the video model starts as
exactly the C2D of those weights.
"""
from __future__ import annotations

from typing import Optional, Union

import timm
from timm.models import FeatureGraphNet, register_model
from torch import nn

from cp_plugin.cp_module import CP_OPTIONS
from cp_plugin.presets import CP_PRESETS, resolve_placement
from cp_plugin.validation import unknown_name_message

from .insert import BlockList, insert_cp
from .video import DEFAULT_NUM_FRAMES, VideoFeatures, VideoModel


def create_video_model(model_name: str, cp_blocks: BlockList = None, *, pretrained: bool = False,
                       cp_cfg: Optional[dict] = None, global_pool: str = "avg",
                       num_frames: int = DEFAULT_NUM_FRAMES,
                       **kwargs) -> Union[VideoModel, VideoFeatures]:
    """A timm model with CP modules, wrapped to take clips (N, C, T, H, W).

    Args:
        model_name: any timm model whose chosen blocks are supported (see ``insert_cp``).
        cp_blocks: a preset name or a list of block names (see :func:`insert_cp`); ``[]`` for
            a plain C2D. Default: the preset named ``model_name`` if there is one.
        pretrained: load the image model's weights, timm's way (``pretrained_cfg_overlay=
            dict(file=path)`` for a local file) before CP is inserted.
        cp_cfg: CPModule options for every module; ``cp_<option>=`` keywords (``cp_k=4``) do
            the same.
        global_pool: pooling over T, H, W before the classifier, ``'avg'`` or ``'max'``.
        num_frames: the clip length the model is meant for, in its ``pretrained_cfg``.
        **kwargs: passed to ``timm.create_model`` (``num_classes``, ``drop_rate``,
            ``pretrained_cfg_overlay``, ``features_only``, ``out_indices``, ``feature_cls`` ...).
            With ``features_only``, block names are those of the features model (the same
            for ResNets; the error lists them otherwise).

    Returns:
        :class:`VideoModel`, or :class:`VideoFeatures` when ``features_only=True``.
    """
    cp_cfg = dict(cp_cfg or {})
    for key in [k for k in kwargs if k.startswith("cp_")]:
        option = key[len("cp_"):]
        if option not in CP_OPTIONS:
            valid = ["cp_blocks", "cp_cfg", *("cp_" + o for o in CP_OPTIONS)]
            raise TypeError(unknown_name_message("create_video_model", key, valid, "CP keyword"))
        if option in cp_cfg:
            raise TypeError(f"{option!r} is given twice, as {key}= and in cp_cfg; give it once")
        cp_cfg[option] = kwargs.pop(key)
    if cp_blocks is None:
        base_name = model_name.split(".")[0]
        if base_name not in CP_PRESETS:
            raise ValueError(
                f"cp_blocks is required for {model_name!r}: a preset name "
                f"({', '.join(CP_PRESETS)}) or block names such as ['layer3.0', 'layer3.1'] "
                f"([] for no CP module)")
        cp_blocks = base_name
    resolve_placement(cp_blocks, CP_PRESETS, "cp_blocks")  # a wrong name refused before building

    if kwargs.get("features_only") and kwargs.get("feature_cls") == "fx":
        return _fx_features(model_name, cp_blocks, cp_cfg, pretrained, num_frames, kwargs)
    backbone = timm.create_model(model_name, pretrained=pretrained, **kwargs)
    insert_cp(backbone, cp_blocks, **cp_cfg)
    if kwargs.get("features_only"):
        return VideoFeatures(backbone, num_frames)
    return VideoModel(backbone, global_pool=global_pool, num_frames=num_frames)


def _fx_features(model_name, cp_blocks, cp_cfg, pretrained, num_frames, kwargs
                 ) -> VideoFeatures:
    # timm would trace the model before CP could go in, inlining the blocks; so insert into the
    # full model first and trace it then (CP sites are registered as FX leaves).
    kwargs = dict(kwargs)
    del kwargs["features_only"], kwargs["feature_cls"]
    out_indices = kwargs.pop("out_indices", (0, 1, 2, 3, 4))
    backbone = timm.create_model(model_name, pretrained=pretrained, **kwargs)
    insert_cp(backbone, cp_blocks, **cp_cfg)
    return VideoFeatures(FeatureGraphNet(backbone, out_indices=out_indices), num_frames)


def _cpnet(base: str, pretrained: bool, kwargs: dict) -> nn.Module:
    # timm hands the entrypoint its own factory arguments too; a model tag ('.tv_in1k')
    # arrives as pretrained_cfg and goes on to the image model unchanged.
    kwargs.setdefault("cp_blocks", base)
    return create_video_model(base, pretrained=pretrained, **kwargs)


@register_model
def cpnet_resnet18(pretrained: bool = False, **kwargs) -> nn.Module:
    """CPNet ResNet-18: CP after every block of res3 and res4 (layer2.*, layer3.*), k=8."""
    return _cpnet("resnet18", pretrained, kwargs)


@register_model
def cpnet_resnet34(pretrained: bool = False, **kwargs) -> nn.Module:
    """CPNet ResNet-34: CP after the last 2 blocks of res3 and the last 3 of res4, k=8."""
    return _cpnet("resnet34", pretrained, kwargs)


@register_model
def cpnet_resnet50(pretrained: bool = False, **kwargs) -> nn.Module:
    """CPNet ResNet-50 (our choice, not in the paper): ResNet-101's bottlenecked CP (k=4)
    at ResNet-34's positions."""
    return _cpnet("resnet50", pretrained, kwargs)


@register_model
def cpnet_resnet101(pretrained: bool = False, **kwargs) -> nn.Module:
    """CPNet ResNet-101: CP after the last 2 blocks of res3 and the last 3 of res4, k=4,
    C/8 bottleneck."""
    return _cpnet("resnet101", pretrained, kwargs)

"""mmaction2 glue: ``TimmCPBackbone``, a timm model with CP modules as a clip backbone.

Registered in mmaction2's MODELS registry by :mod:`cp_plugin.mmaction` when timm is installed.
Its type name must not start with ``timm.``: mmaction2's recognizers treat that prefix as a
plain timm image model.
"""
from __future__ import annotations

from typing import Optional, Union

import torch
from mmaction.registry import MODELS
from mmengine.model import BaseModule

from timm_adapters.insert import BlockList
from timm_adapters.models import create_video_model

from ..cp_module import CP_OPTIONS
from ..insertion import sites_removed
from ..presets import CP_PRESETS, resolve_placement
from ..validation import argument_names, check_known_options


@MODELS.register_module()
class TimmCPBackbone(BaseModule):
    """A timm model with CP modules, for Recognizer3D: (N, C, T, H, W) -> (N, C', T, H', W').

    Args:
        model_name: a timm model name (``'resnet50'``, ``'seresnet50'`` ...).
        cp_blocks: a preset name or block names (see ``timm_adapters.insert_cp``); default the
            preset named ``model_name``; ``[]`` for a plain C2D.
        cp_cfg: CPModule options for every module (``k``, ``mlp_channels`` ...).
        pretrained: False, True (timm's own weights source), or a path to a local ImageNet
            checkpoint of the image model, loaded by timm before CP is inserted.
        model_cfg: more ``timm.create_model`` arguments (``in_chans``, ``drop_path_rate`` ...).
            The image model is built without a classifier: the mmaction2 head classifies.

    Parameter names are ``model.<timm name>``, CP modules ``model.<block>.<act>.module.*``.

    Shape:
        - Input: clips (N, C, T, H, W).
        - Output: (N, C', T, H', W') features for an mmaction2 clip head (``feat_dim`` = C').

    Examples::

        >>> import cp_plugin.mmaction  # registers TimmCPBackbone with mmaction2
        >>> from mmaction.registry import MODELS
        >>> backbone = MODELS.build(dict(type="TimmCPBackbone", model_name="resnet18",
        ...                              cp_blocks=["layer3.1"], cp_cfg=dict(k=4)))
        >>> backbone(torch.randn(1, 3, 4, 64, 64)).shape
        torch.Size([1, 512, 4, 2, 2])
    """

    def __init__(self, model_name: str, cp_blocks: BlockList = None, cp_cfg: Optional[dict] = None,
                 pretrained: Union[bool, str] = False, model_cfg: Optional[dict] = None,
                 init_cfg=None, **unknown) -> None:
        owner = type(self).__name__
        check_known_options(owner, unknown, argument_names(type(self)))
        check_known_options(f"{owner}.cp_cfg", cp_cfg or {}, CP_OPTIONS)
        if cp_blocks is not None:
            resolve_placement(cp_blocks, CP_PRESETS, f"{owner}.cp_blocks")
        super().__init__(init_cfg=init_cfg)
        model_cfg = dict(model_cfg or {}, num_classes=0)
        if isinstance(pretrained, str):
            overlay = dict(model_cfg.get("pretrained_cfg_overlay") or {}, file=pretrained)
            model_cfg["pretrained_cfg_overlay"] = overlay
            pretrained = True
        self.model = create_video_model(model_name, cp_blocks, pretrained=bool(pretrained),
                                        cp_cfg=cp_cfg, **model_cfg)
        self.feat_dim = self.model.num_features

    def init_weights(self) -> None:
        """Only this module's ``init_cfg``: pretrained weights were loaded at construction, and
        CP modules are kept out of backbone-wide initialisers."""
        with sites_removed(self):
            super().init_weights()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(x)

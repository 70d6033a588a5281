"""mmaction2 backbones with modules inside their residual blocks: ``VideoBackbone``, ``CPBackbone``."""
from __future__ import annotations

from typing import Callable, Optional, Sequence, Tuple, Union

import torch
from mmaction.models.backbones import C2D
from mmaction.models.backbones.resnet import BasicBlock, Bottleneck
from mmaction.models.backbones.resnet3d import BasicBlock3d, Bottleneck3d
from mmaction.registry import MODELS
from mmengine.model import BaseModule
from torch import nn

from ..blocks import register_block
from ..call_layout import ClipLayout, clip_layout
from ..insertion import find_blocks, insert_modules, insertion_sites, sites_removed
from ..layout import frames_per_clip, frames_to_video, video_to_frames
from ..presets import CP_PRESETS, NONLOCAL_PRESETS, resolve_placement
from ..state_dict import hide_child_in_state_dict
from ..validation import (argument_names, check_known_options, takes_any_keyword,
                          unknown_name_message)

# Presets by the type of the inserted module.
PRESETS_BY_TYPE = {"CPModule": CP_PRESETS, "NonLocal3d": NONLOCAL_PRESETS,
                   "FusedNonLocal3d": NONLOCAL_PRESETS}


def _last_conv(name: str) -> Callable[[nn.Module], int]:
    return lambda block: getattr(block, name).conv.out_channels


# mmaction2's residual blocks all end with ``out = self.relu(out + identity)``.
register_block(BasicBlock, "relu", out_channels=_last_conv("conv2"))
register_block(Bottleneck, "relu", out_channels=_last_conv("conv3"))
register_block(BasicBlock3d, "relu", out_channels=_last_conv("conv2"), on_frames=False)
register_block(Bottleneck3d, "relu", out_channels=_last_conv("conv3"), on_frames=False)


def takes_frames(backbone: nn.Module) -> bool:
    """Whether a backbone runs on frames (N*T, C, H, W) rather than clips: its blocks do, and it
    is not mmaction2's C2D, the one 2D backbone that takes clips and flattens them itself."""
    blocks = find_blocks(backbone).values()
    return (bool(blocks) and all(block.spec.on_frames for block in blocks)
            and not isinstance(backbone, C2D))


@MODELS.register_module()
class VideoBackbone(BaseModule):
    """Any mmaction2 ResNet-like backbone as a clip backbone, with modules inside its blocks.

    Args:
        backbone: config of the inner backbone: ``ResNet`` (C2D without temporal pooling, TSN),
            ``ResNetTSM``, ``C2D`` or ``ResNet3d``.
        insertions: each ``dict(blocks=..., position=..., module=dict(type=..., **options))``:
            ``blocks`` a list of block names (``'layer3.1'`` or ``dict(block='layer3.1', **options)``)
            or a preset name of the module's type; ``position`` ``'before_activation'`` (after
            the residual add) or ``'after_block'``. Each module is built with ``in_channels``
            set to its block's output channels.
        num_segments: frames per view for (N*T, C, H, W) inputs (Recognizer2D) in training;
            defaults to the inner backbone's ``num_segments`` (TSM has one; TSN's ``ResNet``
            does not: set it to the training pipeline's ``num_clips``).
        test_num_segments: frames per view for (N*T, C, H, W) inputs in eval mode (validation
            and test), when the test pipeline samples another number of segments than training
            (stock TSN: 3 in training, 25 x TenCrop in test); defaults to ``num_segments``.
            Validation then has to sample as many segments per view as the test.
        inserted_norm_eval: keep the inserted modules' BN layers in eval mode (frozen running
            statistics), as ``norm_eval`` does for the backbone's; for fine-tuning phases.

    In state dicts the wrapper is invisible: keys are the plain backbone's plus the inserted
    modules' (``layer3.1.relu.module.*``), so plain checkpoints load with only those missing.

    Shape:
        - Input: clips (N, C, T, H, W) (Recognizer3D; a 2D inner backbone then runs on their
          frames), or clip-major frames (N*T, C, H, W) (Recognizer2D).
        - Output: the inner backbone's features, as (N, C', T', H', W') for clips and as the
          inner backbone gives them for frames.
    """

    def __init__(self, backbone: dict, insertions: Sequence[dict] = (),
                 num_segments: Optional[int] = None, test_num_segments: Optional[int] = None,
                 inserted_norm_eval: bool = False, init_cfg=None, **unknown) -> None:
        check_known_options(type(self).__name__, unknown, argument_names(type(self)))
        super().__init__(init_cfg=init_cfg)
        self.inserted_norm_eval = inserted_norm_eval
        self.backbone = MODELS.build(backbone)
        self.frame_input = takes_frames(self.backbone)
        self.num_segments = num_segments or getattr(self.backbone, "num_segments", None)
        self.test_num_segments = test_num_segments or self.num_segments
        for index, insertion in enumerate(insertions):
            self._insert(dict(insertion), *self._config_keys(index))
        hide_child_in_state_dict(self)

    def _config_keys(self, index: int) -> Tuple[str, str]:
        """How the user's config names the blocks and the module of ``insertions[index]``."""
        where = f"{type(self).__name__}.insertions[{index}]"
        return f"{where}.blocks", f"{where}.module"

    def _insert(self, insertion: dict, blocks_key: str, module_key: str) -> None:
        where = blocks_key.rsplit(".", 1)[0]
        unknown = set(insertion) - {"blocks", "position", "module"}
        if unknown or "module" not in insertion:
            raise ValueError(f"{where} must be dict(blocks=..., position=..., module=dict(type=...)), "
                             f"got keys {sorted(insertion)}")
        module_cfg = dict(insertion["module"])
        module_type = module_cfg.get("type")
        module_class = MODELS.get(module_type) if isinstance(module_type, str) else module_type
        if module_class is None:
            raise KeyError(unknown_name_message(
                f"{module_key}.type", module_type, MODELS.module_dict, "module type",
                listed=f"any name in mmaction2's MODELS registry, e.g. {', '.join(PRESETS_BY_TYPE)}"))
        if isinstance(module_class, type) and not takes_any_keyword(module_class):
            check_known_options(module_key, set(module_cfg) - {"type"},
                                [n for n in argument_names(module_class) if n != "in_channels"])
        presets = PRESETS_BY_TYPE.get(str(module_type), {})
        blocks, defaults = resolve_placement(insertion.get("blocks"), presets, blocks_key)

        def build(channels: int, overrides: dict) -> nn.Module:
            return MODELS.build({**defaults, **module_cfg, **overrides, "in_channels": channels})

        insert_modules(self.backbone, blocks, build, insertion.get("position", "before_activation"),
                       what=f"a {module_cfg.get('type')}")

    def __getattr__(self, name: str):
        # Heads and recognizers read attributes such as feat_dim from the backbone.
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name.startswith("_") or "backbone" not in self._modules:
                raise
            return getattr(self._modules["backbone"], name)

    def get(self, name: str, default=None):
        """Recognizer2D's ``max_testing_views`` (a test setting) asks its backbone
        ``.get('num_segments')`` for the frames per view: in eval mode that is
        ``test_num_segments``."""
        if name == "num_segments" and not self.training:
            name = "test_num_segments"
        return getattr(self, name, default)

    def init_weights(self) -> None:
        """Initialise the plain backbone as configured; inserted modules keep their own init.

        The inserted modules are taken out meanwhile, so backbone-wide initialisers (ResNet3d
        sets every BN to 1) and torchvision-checkpoint loaders never touch them.
        """
        with sites_removed(self.backbone):
            self.backbone.init_weights()
        self._is_init = True

    def train(self, mode: bool = True) -> "VideoBackbone":
        """Train as the inner backbone does (norm_eval, partial_bn, frozen_stages); the inserted
        modules, taken out meanwhile, follow ``mode`` (and ``inserted_norm_eval``) only.

        ``requires_grad`` is never touched here: inserted modules stay as trainable as their
        user left them, whatever the backbone's ``frozen_stages`` freezes.
        """
        with sites_removed(self.backbone):
            super().train(mode)
        for site in insertion_sites(self):
            site.train(mode)
            if mode and self.inserted_norm_eval:
                for module in site.module.modules():
                    if isinstance(module, nn.modules.batchnorm._BatchNorm):
                        module.eval()
        return self

    def forward(self, x: torch.Tensor) -> Union[torch.Tensor, tuple]:
        if x.dim() == 5:
            layout = ClipLayout(num_clips=x.shape[0], input_frames=x.shape[2])
        elif x.dim() == 4:
            key = "num_segments" if self.training else "test_num_segments"
            segments = getattr(self, key)
            if not segments:
                raise ValueError(
                    f"{type(self).__name__} got frames (N*T, C, H, W) but no {key}; set {key}=T "
                    f"(frames per view) in its config or feed clips (N, C, T, H, W) via "
                    f"Recognizer3D")
            frames_per_clip(x.shape[0], num_frames=segments, num_frames_name=key)
            layout = ClipLayout(num_clips=x.shape[0] // segments, input_frames=segments)
        else:
            raise ValueError(f"input must be (N, C, T, H, W) or (N*T, C, H, W), got {tuple(x.shape)}")
        clips_to_frames = x.dim() == 5 and self.frame_input
        with clip_layout(self.backbone, layout):
            out = self.backbone(video_to_frames(x) if clips_to_frames else x)
        if not clips_to_frames:
            return out
        if isinstance(out, tuple):
            return tuple(frames_to_video(o, num_clips=layout.num_clips) for o in out)
        return frames_to_video(out, num_clips=layout.num_clips)


@MODELS.register_module()
class CPBackbone(VideoBackbone):
    """A backbone with CP modules after the residual add of chosen blocks.

    Args:
        backbone: the inner backbone's config (see :class:`VideoBackbone`).
        cp_blocks: a preset name (``'resnet18'``, ``'resnet18-6cp'``, ``'resnet34'``,
            ``'resnet50'``, ``'resnet101'``: the authors' placements) or a list of block names.
        cp_cfg: :class:`cp_plugin.CPModule` options for every module (``k``, ``mlp_channels``...),
            over the preset's.
        insertions: further modules, as in :class:`VideoBackbone`.

    Shape:
        As :class:`VideoBackbone`.

    Examples::

        >>> import cp_plugin.mmaction  # registers CPBackbone with mmaction2
        >>> from mmaction.registry import MODELS
        >>> backbone = MODELS.build(dict(
        ...     type="CPBackbone", backbone=dict(type="C2D", depth=18, pretrained=None),
        ...     cp_blocks=["layer3.1"], cp_cfg=dict(k=4)))
        >>> backbone(torch.randn(1, 3, 4, 64, 64)).shape
        torch.Size([1, 512, 2, 2, 2])
    """

    def __init__(self, backbone: dict, cp_blocks: Union[str, Sequence] = "resnet18",
                 cp_cfg: Optional[dict] = None, insertions: Sequence[dict] = (),
                 num_segments: Optional[int] = None, test_num_segments: Optional[int] = None,
                 inserted_norm_eval: bool = False, init_cfg=None, **unknown) -> None:
        check_known_options(type(self).__name__, unknown, argument_names(type(self)))
        cp = dict(blocks=cp_blocks, position="before_activation",
                  module=dict(type="CPModule", **(cp_cfg or {})))
        super().__init__(backbone, insertions=[cp, *insertions], num_segments=num_segments,
                         test_num_segments=test_num_segments,
                         inserted_norm_eval=inserted_norm_eval, init_cfg=init_cfg)

    def _config_keys(self, index: int) -> Tuple[str, str]:
        if index == 0:  # the CP modules
            return f"{type(self).__name__}.cp_blocks", f"{type(self).__name__}.cp_cfg"
        return super()._config_keys(index - 1)

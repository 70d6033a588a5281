"""Video wrappers running a timm image model per frame: :class:`VideoModel`, :class:`VideoFeatures`.

A clip (N, C, T, H, W) becomes a clip-major batch of N*T frames for the 2D model; CP modules
inside it learn the clip layout of the call in progress from
:func:`cp_plugin.call_layout.clip_layout`, which holds it for that call only. With grad
checkpointing, blocks (and the CP modules in them) are re-run in backward; the wrapper's outputs
then carry the layout into backward for them.
"""
from __future__ import annotations

import re
from typing import Dict, List, Optional, Union

import torch
from torch import nn

from cp_plugin.call_layout import ClipLayout, clip_layout, keep_layout_for_recompute
from cp_plugin.layout import frames_to_video, video_to_frames
from cp_plugin.state_dict import hide_child_in_state_dict
from cp_plugin.validation import check_clips, input_channels

POOLS = ("avg", "max")
#: The clip length a video model is meant for unless told otherwise: the paper's 8-frame clips.
DEFAULT_NUM_FRAMES = 8


def _check_pool(global_pool: str) -> str:
    if global_pool not in POOLS:
        raise ValueError(f"global_pool must be one of {POOLS} (pooling over T, H and W), "
                         f"got {global_pool!r}")
    return global_pool


class ClipsAsFrames(nn.Module):
    """What both wrappers share: hold the image model, turn clips into frames, tell the CP
    sites the clip layout of the call."""

    def __init__(self, backbone: nn.Module, num_frames: int = DEFAULT_NUM_FRAMES) -> None:
        super().__init__()
        if not isinstance(backbone, nn.Module):
            raise TypeError(
                f"backbone must be a timm model (nn.Module), got {type(backbone).__name__}")
        if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1:
            raise ValueError(f"num_frames (the clip length the model is meant for) must be a "
                             f"positive int, got {num_frames!r}")
        self.backbone = backbone
        self.num_frames = num_frames
        hide_child_in_state_dict(self)  # plain timm checkpoints load into the wrapper

    def _run(self, function, x: torch.Tensor):
        """``function`` (the image model or one of its methods) on the frames of clips ``x``;
        returns its output and the layout, every CP site seeing that layout meanwhile."""
        check_clips(x, "x", type(self).__name__, input_channels(self.backbone))
        layout = ClipLayout(num_clips=x.shape[0], input_frames=x.shape[2])
        with clip_layout(self.backbone, layout):
            out = function(video_to_frames(x))
        if not torch.compiler.is_compiling() and self._checkpointing():
            out = keep_layout_for_recompute(out, layout)
        return out, layout

    def _checkpointing(self) -> bool:
        # timm keeps the flag on the model (ResNet, EfficientNet) or on each stage (ConvNeXt,
        # ResNetV2, RegNet), so look everywhere.
        return torch.is_grad_enabled() and any(
            getattr(module, "grad_checkpointing", False) is True
            for module in self.backbone.modules())

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Checkpoint the image model's blocks; CP modules inside them are re-run in backward."""
        if not callable(getattr(self.backbone, "set_grad_checkpointing", None)):
            raise TypeError(f"{type(self.backbone).__name__} has no set_grad_checkpointing(); "
                            f"timm's FX feature models (feature_cls='fx') cannot checkpoint, "
                            f"use the default feature_cls")
        self.backbone.set_grad_checkpointing(enable)

    @property
    def pretrained_cfg(self) -> dict:
        """The image model's (so ``timm.data.resolve_model_data_config`` works on the wrapper),
        plus ``num_frames``: the clip length the video model is meant for. ``input_size`` stays
        the per-frame (C, H, W) that timm's transforms expect."""
        return {**getattr(self.backbone, "pretrained_cfg", {}), "num_frames": self.num_frames}

    @property
    def default_cfg(self) -> dict:
        return self.pretrained_cfg

    @property
    def feature_info(self):
        return getattr(self.backbone, "feature_info", None)


class VideoModel(ClipsAsFrames):
    """A timm classifier as a C2D video classifier: per-frame 2D model, then pool T, H, W.

    Args:
        backbone: a timm classification model (with ``forward_features``/``forward_head``),
            possibly with CP modules inserted by :func:`timm_adapters.insert_cp`.
        global_pool: ``'avg'`` (the paper's global average over T, H, W) or ``'max'``.
        num_frames: the clip length the model is meant for, stated in ``pretrained_cfg``
            (any T >= 2 runs).

    T may differ between calls (train on 8 frames, test on 16). The classifier is the image
    model's own head, applied to the pooled clip features. State-dict keys are the image model's
    (plus ``<block>.<act>.module.*`` for CP modules).

    Shape:
        - Input: clips (N, C, T, H, W).
        - Output: (N, num_classes) logits; ``forward_features`` gives (N, C', T, H', W').

    Examples::

        >>> import timm
        >>> from timm_adapters import VideoModel, insert_cp
        >>> image_model = timm.create_model("resnet18", num_classes=10)
        >>> _ = insert_cp(image_model, ["layer3.1"], k=4)
        >>> VideoModel(image_model)(torch.randn(2, 3, 4, 64, 64)).shape
        torch.Size([2, 10])
    """

    def __init__(self, backbone: nn.Module, global_pool: str = "avg",
                 num_frames: int = DEFAULT_NUM_FRAMES) -> None:
        super().__init__(backbone, num_frames)
        for method in ("forward_features", "forward_head", "reset_classifier", "get_classifier"):
            if not callable(getattr(backbone, method, None)):
                raise TypeError(
                    f"backbone must be a timm classifier with {method}(); got "
                    f"{type(backbone).__name__}. For features_only models use VideoFeatures.")
        self.global_pool = _check_pool(global_pool)

    @property
    def num_classes(self) -> int:
        return self.backbone.num_classes

    @property
    def num_features(self) -> int:
        return self.backbone.num_features

    @property
    def head_hidden_size(self) -> int:
        return getattr(self.backbone, "head_hidden_size", self.num_features)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, T, H, W) clips -> (N, C', T, H', W') unpooled features."""
        features, layout = self._run(self.backbone.forward_features, x)
        return frames_to_video(features, num_clips=layout.num_clips)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """(N, C', T, H', W') features -> (N, num_classes) logits (or pooled features)."""
        if self.global_pool == "avg":
            pooled = x.mean(dim=(2, 3, 4))
        else:
            pooled = x.amax(dim=(2, 3, 4))
        # The image model's head pools a 1x1 map (a no-op), then dropout and its classifier.
        out = self.backbone.forward_head(pooled[:, :, None, None], pre_logits=pre_logits)
        return out.flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(self, x: torch.Tensor, indices=None, norm: bool = False,
                              stop_early: bool = False, output_fmt: str = "NCTHW",
                              intermediates_only: bool = False):
        """timm's ``forward_intermediates`` on clips: every map is (N, C_i, T, H_i, W_i).

        ``indices``, ``norm``, ``stop_early`` and ``intermediates_only`` mean what they mean for
        the image model; returns ``(features, intermediates)``, or the intermediates alone.
        """
        if output_fmt != "NCTHW":
            raise ValueError(f"output_fmt must be 'NCTHW' (maps of clips), got {output_fmt!r}")
        if not callable(getattr(self.backbone, "forward_intermediates", None)):
            raise TypeError(f"{type(self.backbone).__name__} has no forward_intermediates()")
        out, layout = self._run(lambda frames: self.backbone.forward_intermediates(
            frames, indices=indices, norm=norm, stop_early=stop_early, output_fmt="NCHW",
            intermediates_only=intermediates_only), x)
        if intermediates_only:
            return [frames_to_video(m, num_clips=layout.num_clips) for m in out]
        features, intermediates = out
        return (frames_to_video(features, num_clips=layout.num_clips),
                [frames_to_video(m, num_clips=layout.num_clips) for m in intermediates])

    def prune_intermediate_layers(self, indices=1, prune_norm: bool = False,
                                  prune_head: bool = True):
        """The image model's: drop the layers that ``forward_intermediates(indices)`` skips."""
        return self.backbone.prune_intermediate_layers(indices, prune_norm=prune_norm,
                                                        prune_head=prune_head)

    def get_classifier(self) -> nn.Module:
        return self.backbone.get_classifier()

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        """New classifier for ``num_classes`` (0: none); ``global_pool``: 'avg' or 'max'."""
        if global_pool is not None:
            self.global_pool = _check_pool(global_pool)
        self.backbone.reset_classifier(num_classes)

    def group_matcher(self, coarse: bool = False) -> Dict:
        """The image model's parameter groups (for layer decay), for the wrapper's names."""
        return {group: _under_backbone(spec)
                for group, spec in self.backbone.group_matcher(coarse=coarse).items()}


def _under_backbone(spec):
    """Rewrite a timm group regex (or ``(regex, suffix)`` list) for ``backbone.``-prefixed names."""
    if spec is None:
        return None
    if isinstance(spec, (list, tuple)):
        return [(_under_backbone(pattern), suffix) for pattern, suffix in spec]
    # timm matches with re.match, which anchors at the start already, so the '^' of each
    # alternative can go ('^' right after '[' negates a character class and stays).
    return r"^backbone\.(?:" + re.sub(r"(?<!\[)\^", "", spec) + ")"


class VideoFeatures(ClipsAsFrames):
    """A timm ``features_only`` model on clips (N, C, T, H, W) -> maps (N, C_i, T, H_i, W_i).

    Returns a list (or a dict, for ``feature_cls='dict'``) like the image model does;
    ``feature_info`` is the image model's.

    Shape:
        - Input: clips (N, C, T, H, W).
        - Output: per feature level i, (N, C_i, T, H_i, W_i).

    Examples::

        >>> import timm
        >>> from timm_adapters import VideoFeatures
        >>> features = VideoFeatures(timm.create_model("resnet18", features_only=True))
        >>> [f.shape[1:3] for f in features(torch.randn(1, 3, 4, 64, 64))][-1]
        torch.Size([512, 4])
    """

    def forward(self, x: torch.Tensor) -> Union[List[torch.Tensor], Dict[str, torch.Tensor]]:
        out, layout = self._run(self.backbone, x)
        if isinstance(out, dict):
            return {k: frames_to_video(v, num_clips=layout.num_clips) for k, v in out.items()}
        return [frames_to_video(v, num_clips=layout.num_clips) for v in out]

"""``CPNeck``: a CP module on the feature map a backbone hands its head, for any mmaction2 backbone.

mmaction2's recognizers call a neck as ``neck(x, data_samples=...)`` and expect ``(x, loss_aux)``, ``loss_aux`` a dict of losses:

- Recognizer3D passes the backbone's output as it is: a (N, C, T, H, W) map or a tuple of them.
- Recognizer2D regroups each of the backbone's outputs into clips first, (N, C, T, H, W) with
  T = the segments (times the test views), and passes them as a *list*; afterwards it squeezes
  dim 2 and hands the head one segment per clip. It iterates over the backbone's output to do
  so, which works only for a backbone returning a tuple (a ResNet with ``out_indices=(2, 3)``);
  a single tensor would be iterated over its batch, so CPNeck refuses 4-dim maps.
"""
from __future__ import annotations

from typing import Optional, Union

import torch

from ..cp_module import CPModule
from ..validation import argument_names, check_known_options, check_positive_int

__all__ = ["CPNeck"]


class CPNeck(CPModule):
    """A :class:`cp_plugin.CPModule` on the backbone's last (or ``index``-th) feature map.

    Its output BN starts at zero, so a zoo model with a CP neck starts as that zoo model: a
    zoo checkpoint loads with only the neck's keys missing and gives the same scores.

    From Recognizer3D the output keeps the backbone's structure with the chosen map replaced.
    From Recognizer2D it is the chosen map after CP, averaged over T to (N, C, 1, H, W), as TPN
    does: Recognizer2D then gives its head one segment per clip, and a head with average
    consensus (TSN's, TSM's with ``num_segments=1``) scores exactly what it scored per segment.

    Args:
        in_channels: C of the chosen map.
        index: which of several backbone outputs takes CP (default the last).
        num_segments: frames per clip for CP when Recognizer2D stacks test views along T
            (e.g. 8 for TSM's 8 segments with ThreeCrop: T = 24 is 3 clips of 8); None: all of T.
        **cp_options: :class:`cp_plugin.CPModule` options (``k``, ``mlp_channels``, ...).

    Shape:
        - Input: (N, C, T, H, W), a tuple of such maps, or a list of them (Recognizer2D).
        - Output: ``(features, {})``: features as described above, no auxiliary loss.

    Examples::

        >>> neck = CPNeck(32, k=4)
        >>> features, loss_aux = neck(torch.randn(2, 32, 4, 7, 7))
        >>> features.shape, loss_aux
        (torch.Size([2, 32, 4, 7, 7]), {})
        >>> neck([torch.randn(2, 16, 8, 7, 7), torch.randn(2, 32, 8, 7, 7)])[0].shape
        torch.Size([2, 32, 1, 7, 7])
    """

    def __init__(self, in_channels: int, index: int = -1, num_segments: Optional[int] = None,
                 **cp_options) -> None:
        check_known_options("CPNeck", cp_options, argument_names(CPNeck) + [
            name for name in argument_names(CPModule) if name != "in_channels"])
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError(f"index must be an int (which backbone output), got {index!r}")
        super().__init__(in_channels, **cp_options)
        self.index = index
        self.num_segments = (None if num_segments is None
                             else check_positive_int("num_segments", num_segments, minimum=2))

    def extra_repr(self) -> str:
        parts = [super().extra_repr(), f"index={self.index}"]
        if self.num_segments is not None:
            parts.append(f"num_segments={self.num_segments}")
        return ", ".join(parts)

    def forward(self, x: Union[torch.Tensor, tuple, list], data_samples=None) -> tuple:
        if isinstance(x, torch.Tensor):
            return self._cp(self._checked(x, from_2d=False), from_2d=False), {}
        outputs = list(x)
        position = self._position(len(outputs))
        from_2d = isinstance(x, list)  # Recognizer2D: one (N, C, T, H, W) map per output
        features = self._cp(self._checked(outputs[position], from_2d), from_2d)
        if from_2d:
            return features.mean(dim=2, keepdim=True), {}
        outputs[position] = features
        return tuple(outputs), {}

    def _position(self, count: int) -> int:
        if not -count <= self.index < count:
            raise IndexError(f"CPNeck index={self.index} is out of range: the backbone gives "
                             f"{count} output(s); use an index in [{-count}, {count - 1}]")
        return self.index % count

    @staticmethod
    def _checked(chosen, from_2d: bool) -> torch.Tensor:
        if isinstance(chosen, (list, tuple)):
            raise TypeError(
                "CPNeck's chosen backbone output is a pair of tensors (MViT's [patch_token, "
                "cls_token]); its head classifies from the class token, which CP would not change. "
                "Build the backbone with output_cls_token=False and the head with "
                "with_cls_token=False so that the head reads the patch map.")
        if not isinstance(chosen, torch.Tensor) or chosen.dim() != 5:
            shape = tuple(chosen.shape) if isinstance(chosen, torch.Tensor) else type(chosen).__name__
            hint = ("Recognizer2D hands a neck each of the backbone's outputs regrouped into clips, "
                    "and splits a single output tensor per sample: give the backbone several "
                    "outputs (ResNet: out_indices=(2, 3)) and keep index=-1"
                    if from_2d and isinstance(chosen, torch.Tensor) and chosen.dim() == 4
                    else "CPNeck needs a spatio-temporal map (N, C, T, H, W); a backbone that "
                    "pools or flattens its features (C3D, or timm's pooled output) has none: put "
                    "CP inside it with CPBackbone instead")
            raise ValueError(f"CPNeck got a backbone output of shape {shape}. {hint}.")
        return chosen

    def _cp(self, video: torch.Tensor, from_2d: bool) -> torch.Tensor:
        t = video.shape[2]
        segments = self.num_segments if from_2d else None
        if segments is None or segments == t:
            return super().forward(video)
        if t % segments:
            raise ValueError(
                f"CPNeck got T={t} frames, not a multiple of num_segments={segments}: "
                f"Recognizer2D stacks the test views along T, so T must be views x segments; "
                f"set num_segments to the segments per view (or None for all of T)")
        # (N, C, views * S, H, W) -> (N * views, C, S, H, W): each view a clip of its own.
        views = t // segments
        clips = video.unflatten(2, (views, segments)).transpose(1, 2).flatten(0, 1)
        out = super().forward(clips)
        return out.unflatten(0, (-1, views)).transpose(1, 2).flatten(2, 3)

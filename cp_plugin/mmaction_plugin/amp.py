"""Mixed-precision training through mmengine's AmpOptimWrapper, on the CPU as well as on a GPU."""
from __future__ import annotations

import functools

import torch
from mmaction.models.heads.base import BaseHead
from mmaction.registry import OPTIM_WRAPPERS
from mmengine.device import get_device
from mmengine.optim import AmpOptimWrapper, OptimWrapper


@OPTIM_WRAPPERS.register_module()
class MixedPrecisionOptimWrapper(AmpOptimWrapper):
    """mmengine's ``AmpOptimWrapper``, which refuses to start without an accelerator, made to
    run on the CPU too; on an accelerator it is ``AmpOptimWrapper`` unchanged.

    On the CPU autocast runs in bfloat16 (the only CPU dtype mmengine's autocast accepts). It has
    float32's exponent range, so gradients cannot underflow and no loss scaling is needed: the
    gradient scaler is present (checkpoints keep their shape) but disabled.
    """

    def __init__(self, loss_scale="dynamic", dtype=None, **kwargs):
        if get_device() != "cpu":
            super().__init__(loss_scale=loss_scale, dtype=dtype, **kwargs)
            return
        if isinstance(dtype, str):
            dtype = getattr(torch, dtype, dtype)
        if dtype not in (None, torch.bfloat16):
            raise ValueError(f"on the CPU autocast runs in bfloat16 only, got dtype={dtype!r}; "
                             f"set dtype='bfloat16' or leave it out")
        OptimWrapper.__init__(self, **kwargs)
        self._scale_update_param = None
        self.cast_dtype = torch.bfloat16
        self.loss_scaler = torch.amp.GradScaler("cpu", enabled=False)


def score_heads_in_float32() -> None:
    """mmaction2's heads compute their training accuracy through numpy, which has no bfloat16,
    so a bfloat16 autocast step fails there; give ``loss_by_feat`` float32 scores (idempotent).
    The loss is then computed in float32 too, as autocast does for cross-entropy anyway."""
    original = BaseHead.loss_by_feat
    if getattr(original, "_casts_bfloat16", False):
        return

    @functools.wraps(original)
    def loss_by_feat(self, cls_scores, data_samples):
        if isinstance(cls_scores, torch.Tensor) and cls_scores.dtype == torch.bfloat16:
            cls_scores = cls_scores.float()
        return original(self, cls_scores, data_samples)

    loss_by_feat._casts_bfloat16 = True
    BaseHead.loss_by_feat = loss_by_feat

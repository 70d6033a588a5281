"""Mixed-precision training through mmengine's AmpOptimWrapper, on the CPU as well as on a GPU."""
from __future__ import annotations

import torch
from mmaction.registry import HOOKS, OPTIM_WRAPPERS
from mmengine.device import get_device
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
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


@HOOKS.register_module()
class Float32ScoresHook(Hook):
    """Casts the classification head's bfloat16 scores to float32, for CPU mixed precision.

    mmaction2's heads compute their training accuracy through numpy, which has no bfloat16, so a
    bfloat16 autocast step fails there. This hook adds a forward hook to the run's own
    ``cls_head`` (no class of mmaction2's is changed) and removes it when the run ends; the loss
    is then computed in float32 too, as autocast does for cross-entropy anyway. Our AMP configs
    list it in ``custom_hooks``.
    """

    def __init__(self) -> None:
        self._handle = None

    def before_run(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        head = getattr(model, "cls_head", None)
        if head is None:
            raise ValueError(f"Float32ScoresHook needs a model with a cls_head, got "
                             f"{type(model).__name__}; remove the hook from custom_hooks")
        self._handle = head.register_forward_hook(_scores_to_float32)

    def after_run(self, runner) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None


def _scores_to_float32(module, args, output):
    if isinstance(output, torch.Tensor) and output.dtype == torch.bfloat16:
        return output.float()
    return None

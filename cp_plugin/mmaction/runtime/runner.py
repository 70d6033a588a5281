"""``WeightsOnlyRunner``: mmengine's Runner whose checkpoint loads accept mmengine's own classes."""
from __future__ import annotations

from mmaction.registry import RUNNERS
from mmengine.runner import Runner

from ..compat import mmengine_checkpoints_allowed


@RUNNERS.register_module()
class WeightsOnlyRunner(Runner):
    """mmengine's ``Runner``, with ``torch.load(weights_only=True)`` able to read its checkpoints.

    mmengine 0.10.7 pickles its ``HistoryBuffer`` logging objects (numpy arrays inside) into every
    checkpoint, which torch >= 2.6 refuses by default, so ``resume``, ``load_from`` and testing a
    checkpoint fail. This runner allows exactly those classes, for its own checkpoint loads only
    (resume, ``load_from`` and test all go through :meth:`load_checkpoint`); every other
    ``torch.load`` in the process keeps torch's defaults.

    Select it in a config with ``runner_type = 'WeightsOnlyRunner'`` (our ``default_runtime.py``
    does); mmaction2's and our ``tools/train.py`` and ``tools/test.py`` build ``runner_type``.
    """

    def load_checkpoint(self, filename: str, *args, **kwargs):
        with mmengine_checkpoints_allowed():
            return super().load_checkpoint(filename, *args, **kwargs)


def build_runner(cfg) -> Runner:
    """The runner of a config, as mmaction2's tools build it (``runner_type`` through the
    registry), except that a config naming none gets :class:`WeightsOnlyRunner`, so that
    ``--resume`` and ``load_from`` read its checkpoints under torch >= 2.6."""
    if "runner_type" in cfg:
        return RUNNERS.build(cfg)
    return WeightsOnlyRunner.from_cfg(cfg)

"""``WeightsOnlyRunner``: mmengine's Runner whose checkpoint loads accept mmengine's own classes
and say in one line which of the model's entries a checkpoint did not have."""
from __future__ import annotations

import logging
import re
from typing import Dict, List, Optional

from mmaction.registry import RUNNERS
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint, _load_checkpoint_to_model
from torch import nn

from ...cp_module import CPModule
from ...state_dict import state_dict_prefixes
from ..compat import mmengine_checkpoints_allowed

#: How many keys of each kind a summary names.
NAMED = 3


@RUNNERS.register_module()
class WeightsOnlyRunner(Runner):
    """mmengine's ``Runner``, with ``torch.load(weights_only=True)`` able to read its checkpoints.

    mmengine 0.10.7 pickles its ``HistoryBuffer`` logging objects (numpy arrays inside) into every
    checkpoint, which torch >= 2.6 refuses by default, so ``resume``, ``load_from`` and testing a
    checkpoint fail. This runner allows exactly those classes, for its own checkpoint loads only
    (resume, ``load_from`` and test all go through :meth:`load_checkpoint`); every other
    ``torch.load`` in the process keeps torch's defaults.

    Where the checkpoint and the model differ (a C2D checkpoint loaded into CPNet: every CP
    module's entries missing), one warning line counts what was missing, where, and what else,
    in place of mmengine's list of every key.

    Select it in a config with ``runner_type = 'WeightsOnlyRunner'`` (our ``default_runtime.py``
    does); mmaction2's and our ``tools/train.py`` and ``tools/test.py`` build ``runner_type``.
    """

    def load_checkpoint(self, filename: str, map_location="cpu", strict: bool = False,
                        revise_keys=((r"^module.", ""),)):
        # mmengine's Runner.load_checkpoint, step for step, but with the allow-list and with
        # mmengine's key listing sent to a logger of our own, summarised below.
        with mmengine_checkpoints_allowed():
            checkpoint = _load_checkpoint(filename, map_location=map_location)
        self.call_hook("after_load_checkpoint", checkpoint=checkpoint)
        model = self.model.module if is_model_wrapper(self.model) else self.model
        state_dict = checkpoint.get("state_dict", checkpoint)
        names = list(state_dict)
        for pattern, replacement in revise_keys:
            names = [re.sub(pattern, replacement, name) for name in names]
        listing = logging.Logger("cp_plugin.load_checkpoint")  # not in logging's registry
        listing.addHandler(logging.NullHandler())
        _load_checkpoint_to_model(model, checkpoint, strict, logger=listing,
                                  revise_keys=list(revise_keys))
        self._has_loaded = True
        self.logger.info(f"Load checkpoint from {filename}")
        summary = describe_mismatch(model, dict(zip(names, state_dict.values())))
        if summary:
            self.logger.warning(f"{filename}: {summary}")
        return checkpoint


def describe_mismatch(model: nn.Module, state_dict: Dict) -> Optional[str]:
    """One line on how ``state_dict`` differs from ``model``'s (None if it does not): the
    model's entries it lacks (counted per CP module), those it has that the model does not,
    and those of another shape."""
    own = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own and not k.endswith("num_batches_tracked")]
    reshaped = [f"{k} {tuple(state_dict[k].shape)} -> {tuple(own[k].shape)}" for k in own
                if k in state_dict and hasattr(state_dict[k], "shape")
                and tuple(state_dict[k].shape) != tuple(own[k].shape)]
    if not (missing or unexpected or reshaped):
        return None
    cp_prefixes = [p for p, m in state_dict_prefixes(model) if isinstance(m, CPModule)]
    owner = {k: next((p for p in cp_prefixes if k.startswith(p)), None) for k in missing}
    in_cp = [k for k in missing if owner[k]]
    elsewhere = [k for k in missing if not owner[k]]
    parts = []
    if missing:
        where = []
        if in_cp:
            modules = sorted({owner[k][:-1] for k in in_cp})
            where.append(f"{len(in_cp)} in {len(modules)} CP module(s) ({_some(modules)})")
        if elsewhere:
            where.append(f"{len(elsewhere)} elsewhere ({_some(elsewhere)})")
        else:
            where.append("nothing else")
        parts.append(f"{len(missing)} of the model's {len(own)} entries not in the checkpoint, "
                     f"left as initialised: " + ", ".join(where))
    if unexpected:
        parts.append(f"{len(unexpected)} checkpoint entries the model has no place for, "
                     f"ignored ({_some(unexpected)})")
    if reshaped:
        parts.append(f"{len(reshaped)} of another shape, left as initialised ({_some(reshaped)})")
    return "; ".join(parts)


def _some(items) -> str:
    items: List[str] = list(items)
    more = f", and {len(items) - NAMED} more" if len(items) > NAMED else ""
    return ", ".join(items[:NAMED]) + more


def build_runner(cfg) -> Runner:
    """The runner of a config, as mmaction2's tools build it (``runner_type`` through the
    registry), except that a config naming none gets :class:`WeightsOnlyRunner`, so that
    ``--resume`` and ``load_from`` read its checkpoints under torch >= 2.6."""
    if "runner_type" in cfg:
        return RUNNERS.build(cfg)
    return WeightsOnlyRunner.from_cfg(cfg)

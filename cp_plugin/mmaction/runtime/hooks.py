"""Runner hooks for runs that must resume exactly and stay consistent across ranks."""
from __future__ import annotations

import logging
import random
from typing import Optional

import numpy as np
import torch
from mmaction.registry import HOOKS
from mmengine.dist import broadcast, get_rank, get_world_size, is_distributed
from mmengine.hooks import Hook
from mmengine.logging import print_log


def capture_random_states() -> dict:
    """Python, numpy and torch generator states, as plain types and tensors only, so that a
    checkpoint holding them still loads with ``torch.load(weights_only=True)``."""
    name, keys, position, has_gauss, cached = np.random.get_state()
    states = dict(python=random.getstate(),
                  numpy=(name, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached),
                  torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_random_states(states: dict) -> None:
    random.setstate(states["python"])
    name, keys, position, has_gauss, cached = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Keeps the global random streams in checkpoints, so a resumed run draws what the
    uninterrupted run would have drawn (dropout, augmentation in the main process).

    mmengine's checkpoints already hold the weights, optimizer, schedulers, epoch and iteration,
    and its samplers derive each epoch's order from (seed, epoch); the global generators are
    what is missing. Validation runs with its own copy of the streams, so whether and how
    often a run validates does not change its training.

    Exact for epoch-based loops and ``diff_rank_seed=False`` (every rank draws the same
    stream, that of rank 0 which writes the checkpoint). With ``diff_rank_seed=True`` the
    states are not restored: ranks would otherwise share one stream. An iteration-based loop
    resumed mid-epoch skips the batches already seen, drawing from the restored stream as it
    does, so its later draws differ from the uninterrupted run's.
    """

    priority = "VERY_LOW"

    def __init__(self) -> None:
        self._before_validation: Optional[dict] = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint["random_states"] = capture_random_states()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        states = checkpoint.get("random_states")
        if states is None:
            print_log("RandomStateHook: the checkpoint holds no random states; the resumed "
                      "run's random draws will differ from the uninterrupted run's", "current",
                      logging.WARNING)
            return
        if is_distributed() and runner._randomness_cfg.get("diff_rank_seed", False):
            print_log("RandomStateHook: diff_rank_seed=True, random states not restored",
                      "current", logging.WARNING)
            return
        restore_random_states(states)

    def before_val_epoch(self, runner) -> None:
        self._before_validation = capture_random_states()

    def after_val_epoch(self, runner, metrics=None) -> None:
        if self._before_validation is not None:
            restore_random_states(self._before_validation)
            self._before_validation = None


@HOOKS.register_module()
class RankAgreementHook(Hook):
    """Checks that every rank holds the same weights, and fails the run at once if not.

    DDP keeps replicas equal only as long as every rank runs the same updates; a rank that
    skips a step or loads other weights drifts silently. Rank 0's parameters are broadcast and
    compared exactly at the end of every epoch, and every ``interval`` iterations if given.
    """

    priority = "LOW"

    def __init__(self, interval: Optional[int] = None) -> None:
        if interval is not None and (not isinstance(interval, int) or interval < 1):
            raise ValueError(f"interval must be a positive int or None, got {interval!r}")
        self.interval = interval
        self.checks = 0

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if self.interval and self.every_n_train_iters(runner, self.interval):
            self.check(runner)

    def after_train_epoch(self, runner) -> None:
        self.check(runner)
        if is_distributed():
            print_log(f"RankAgreementHook: weights identical on all {get_world_size()} ranks "
                      f"in {self.checks} checks so far", "current")

    def check(self, runner) -> None:
        if not is_distributed():
            return
        model = runner.model.module if hasattr(runner.model, "module") else runner.model
        differing = []
        for name, param in model.named_parameters():
            reference = param.detach().clone()
            broadcast(reference, src=0)
            if not torch.equal(reference, param.detach()):
                differing.append(name)
        # Every rank must learn of a difference, or the others would wait for it forever.
        flag = torch.tensor([len(differing)], device=next(model.parameters()).device)
        torch.distributed.all_reduce(flag)
        self.checks += 1
        if int(flag):
            raise RuntimeError(
                f"ranks hold different weights at iteration {runner.iter} (rank {get_rank()}: "
                f"{len(differing)} differ from rank 0, e.g. {differing[:3]}). Every rank must run "
                f"the same optimizer steps on DDP-synchronised gradients; check for rank-dependent "
                f"code paths, skipped steps or per-rank checkpoint loading.")

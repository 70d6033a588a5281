"""Runner hooks for runs that must resume exactly and stay consistent across ranks."""
from __future__ import annotations

import logging
import random
from typing import List, Optional

import numpy as np
import torch
from mmaction.registry import HOOKS
from mmengine.dist import all_gather_object, broadcast, get_rank, get_world_size, is_distributed
from mmengine.hooks import Hook
from mmengine.logging import print_log


def capture_random_states() -> dict:
    """This process's Python, numpy and torch generator states (and its current CUDA device's),
    as plain types and tensors only, so that a checkpoint holding them still loads with
    ``torch.load(weights_only=True)``."""
    name, keys, position, has_gauss, cached = np.random.get_state()
    states = dict(python=random.getstate(),
                  numpy=(name, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached),
                  torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state()
    return states


def restore_random_states(states: dict) -> List[str]:
    """Restore what :func:`capture_random_states` captured; return the streams it could not."""
    random.setstate(states["python"])
    name, keys, position, has_gauss, cached = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    if "cuda" not in states:
        return []
    if not torch.cuda.is_available():
        return ["cuda (no GPU here)"]
    torch.cuda.set_rng_state(states["cuda"])
    return []


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Keeps every rank's random streams in checkpoints, so a resumed run draws what the
    uninterrupted run would have drawn (dropout, augmentation).

    mmengine's checkpoints already hold the weights, optimizer, schedulers, epoch and iteration,
    and its samplers derive each epoch's order from (seed, epoch); the generators are what is
    missing. At the end of each training epoch every rank's streams (Python, numpy, torch and
    its own CUDA device) are gathered into rank 0's checkpoint, and a resume gives each rank its
    own back. A resume on another number of ranks restores the ranks the checkpoint has and
    says which it has not. ``load_from`` (a new run from old weights) restores nothing.

    Two more things would make a resumed run draw differently, and are handled here:

    - Validation runs with its own copy of the streams, so whether and how often a run
      validates does not change its training.
    - DataLoader workers are seeded once, when they start (mmengine's ``worker_init_fn``);
      ``persistent_workers=True`` keeps them, and their streams, from one epoch to the next,
      while a resumed run starts fresh ones. So persistent training workers are restarted at
      each epoch's start: every epoch's workers start from their seeds, resumed or not (the
      cost: starting the workers once an epoch, as without ``persistent_workers``).

    Exact for epoch-based loops. An iteration-based loop resumed mid-epoch skips the batches
    already seen, drawing from the restored stream as it does, so its later draws differ.
    """

    # Before CheckpointHook (VERY_LOW), whose after_train_epoch saves the checkpoint that the
    # streams gathered in this hook's after_train_epoch go into.
    priority = "LOW"

    def __init__(self) -> None:
        self._before_validation: Optional[dict] = None
        self._every_rank: Optional[list] = None

    def before_train_epoch(self, runner) -> None:
        loader = runner.train_loop.dataloader
        if getattr(loader, "persistent_workers", False) and loader._iterator is not None:
            # DataLoader keeps persistent workers in its private _iterator: dropping it is the
            # only way to restart them; the next iter() starts new ones.
            loader._iterator._shutdown_workers()
            loader._iterator = None

    def after_train_epoch(self, runner) -> None:
        states = capture_random_states()
        # Every rank runs this hook; only rank 0 runs before_save_checkpoint.
        self._every_rank = all_gather_object(states) if is_distributed() else [states]

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        # Saved outside an epoch's end (an iteration-based checkpoint): rank 0's streams only.
        checkpoint["random_states"] = self._every_rank or [capture_random_states()]
        self._every_rank = None

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if not getattr(runner, "_resume", False):
            return  # load_from: a new run, with its own seeds
        saved = checkpoint.get("random_states")
        if saved is None:
            print_log("RandomStateHook: the checkpoint holds no random states; the resumed "
                      "run's random draws will differ from the uninterrupted run's", "current",
                      logging.WARNING)
            return
        if isinstance(saved, dict):  # written before per-rank states: rank 0's only
            saved = [saved]
        rank, world_size = get_rank(), get_world_size()
        if rank < len(saved):
            lost = restore_random_states(saved[rank])
        else:
            lost = ["python", "numpy", "torch"] + (["cuda"] if "cuda" in saved[0] else [])
        if len(saved) != world_size and rank == 0:
            print_log(f"RandomStateHook: the checkpoint holds the random states of "
                      f"{len(saved)} rank(s), this run has {world_size}: ranks "
                      f"0-{min(len(saved), world_size) - 1} continue their streams, the others "
                      f"draw from their seeds, so the run differs from the uninterrupted one",
                      "current", logging.WARNING)
        if lost:
            print_log(f"RandomStateHook: rank {rank} could not restore its {', '.join(lost)} "
                      f"random state(s); their draws differ from the uninterrupted run's",
                      "current", logging.WARNING)

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

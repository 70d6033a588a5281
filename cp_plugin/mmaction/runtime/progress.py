"""A run's progress on the terminal: one tqdm bar per network, mmengine's own output to a file."""
from __future__ import annotations

import contextlib
import os
from typing import List, Optional

from mmengine.hooks import Hook
from tqdm import tqdm


class ProgressHook(Hook):
    """One tqdm bar for a network's training; records its learning curves per epoch."""

    def __init__(self, name: str, stream) -> None:
        self.name, self.stream = name, stream
        self.bar: Optional[tqdm] = None
        self.epoch = 0  # the epoch in progress, from 1
        self.losses: List[float] = []
        self.epoch_loss: List[float] = []  # mean training loss of each epoch
        self.val_acc: List[float] = []  # validation accuracy after each epoch

    def before_train(self, runner) -> None:
        total = runner.max_epochs * len(runner.train_dataloader)
        self.bar = tqdm(total=total, desc=f"{self.name:<9}", file=self.stream, unit="it",
                        dynamic_ncols=True, leave=True,
                        bar_format="{desc} {bar} {n_fmt}/{total_fmt} [{elapsed}<{remaining}]"
                                   "{postfix}")

    def before_train_epoch(self, runner) -> None:
        self.epoch = runner.epoch + 1

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if outputs and "loss" in outputs:
            self.losses.append(float(outputs["loss"].detach()))
        self.bar.update(1)
        self._show(runner)

    def after_train_epoch(self, runner) -> None:
        if self.losses:
            self.epoch_loss.append(sum(self.losses) / len(self.losses))
        self.losses = []

    def after_val_epoch(self, runner, metrics=None) -> None:
        if metrics and "acc/top1" in metrics:
            self.val_acc.append(float(metrics["acc/top1"]))
        self._show(runner)

    def after_train(self, runner) -> None:
        self.bar.close()

    def _show(self, runner) -> None:
        parts = [f"epoch {self.epoch}/{runner.max_epochs}"]
        if self.losses:
            parts.append(f"loss {self.losses[-1]:.3f}")
        if self.val_acc:
            parts.append(f"val {100 * self.val_acc[-1]:.1f}%")
        self.bar.set_postfix_str(", ".join(parts), refresh=False)


@contextlib.contextmanager
def console_to(path: str):
    """Send what mmengine prints (its console log, warnings) to ``path``: the terminal keeps
    the progress bars. mmengine's full log file is written in the work dir as usual."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        yield

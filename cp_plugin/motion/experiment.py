"""The architecture-scale motion experiment: does CP make a real ResNet-18 learn motion?

Stage 1 trains C2D-R18 on the appearance task (``mmaction_configs/motion/c2d_r18_appearance.py``)
and saves it as an ordinary mmengine checkpoint, plus its backbone alone. Stage 2 fine-tunes every
row of :data:`ROWS` on the motion task with mmengine's Runner, each from that checkpoint through
its config (``load_from``; mmaction2's ``pretrained2d`` for TSM), with one recipe for all; one row
trains from scratch. :func:`run_experiment` returns validation accuracy per epoch;
:func:`markdown_table` and :func:`plot_curves` present it. ``make motion`` (``tools/motion.py``)
is its command line.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Dict, List, NamedTuple, Optional, Sequence

from . import mmaction as _registrations  # noqa: F401  (first: repairs mmaction2, registers)

import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.registry import RUNNERS  # noqa: E402

from ..mmaction.runtime.progress import ProgressHook, console_to  # noqa: E402

#: The motion configs, in a clone of the repository.
CONFIG_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "mmaction_configs", "motion")
APPEARANCE_CONFIG = "c2d_r18_appearance.py"


class Row(NamedTuple):
    config: str
    pretrained: bool  # starts from the appearance stage (else from scratch)


ROWS: Dict[str, Row] = {
    "CPNet-R18": Row("cpnet_r18_motion.py", True),
    "C2D-R18": Row("c2d_r18_motion.py", True),
    "NL-C2D-R18": Row("nl-c2d_r18_motion.py", True),
    "TSM-R18": Row("tsm_r18_motion.py", True),
    "CPNet-R18 (scratch)": Row("cpnet_r18_motion.py", False),
}


class Settings(NamedTuple):
    """What a run may scale; ``None`` keeps the configs' values (the shipped experiment)."""
    footage: Optional[str] = None
    train_clips: Optional[int] = None
    val_clips: Optional[int] = None
    epochs: Optional[int] = None
    appearance_frames: Optional[int] = None
    appearance_epochs: Optional[int] = None
    size: Optional[int] = None
    seed: int = 0


def load_config(name: str, work_dir: str, settings: Settings, appearance: bool) -> Config:
    """A motion config with the run's work dir, checkpoint paths and settings applied."""
    cfg = Config.fromfile(os.path.join(CONFIG_DIR, name))
    cfg.work_dir = work_dir
    cfg.randomness = dict(seed=settings.seed)
    if appearance:
        clips, epochs = settings.appearance_frames, settings.appearance_epochs
    else:
        clips, epochs = settings.train_clips, settings.epochs
    if epochs is not None:
        cfg.train_cfg.max_epochs = epochs
    for loader, count in ((cfg.train_dataloader, clips), (cfg.val_dataloader, settings.val_clips)):
        dataset = loader.dataset
        dataset.footage = settings.footage
        if count is not None:
            dataset.num_videos = count
        if settings.size is not None:
            dataset.clip_cfg = dict(dataset.clip_cfg, size=settings.size,
                                    patch=settings.size // 4, min_step=settings.size // 8,
                                    max_step=settings.size // 4)
    cfg.test_dataloader = cfg.val_dataloader
    return cfg


def checkpoint_paths(work_dir: str) -> Dict[str, str]:
    """Where stage 1 writes its checkpoint and its backbone-only weights."""
    return dict(checkpoint=os.path.join(work_dir, "c2d_r18_appearance.pth"),
                backbone=os.path.join(work_dir, "c2d_r18_appearance_backbone.pth"))


def point_at_appearance_stage(cfg: Config, paths: Dict[str, str], pretrained: bool) -> None:
    """Start from stage 1's weights (as the configs do, at this run's paths) or from scratch."""
    backbone = cfg.model.backbone
    if backbone.type == "ResNetTSM":
        backbone.pretrained = paths["backbone"] if pretrained else None
        backbone.pretrained2d = pretrained
    else:
        cfg.load_from = paths["checkpoint"] if pretrained else None


def train(cfg: Config, name: str, stream):
    """Train a config with mmengine's Runner (the runner type it names), a progress bar on
    ``stream`` and mmengine's console output in the work dir; returns (runner, progress)."""
    progress = ProgressHook(name, stream)
    with console_to(os.path.join(cfg.work_dir, "console.log")):
        runner = RUNNERS.build(cfg)
        runner.register_hook(progress)
        runner.train()
    return runner, progress


def run_appearance_stage(work_dir: str, settings: Settings, stream=sys.stderr) -> dict:
    """Stage 1: train C2D-R18 on the appearance task; save its checkpoint and its backbone."""
    cfg = load_config(APPEARANCE_CONFIG, os.path.join(work_dir, "appearance"), settings, True)
    start = time.perf_counter()
    runner, progress = train(cfg, "appearance", stream)
    paths = checkpoint_paths(work_dir)
    runner.save_checkpoint(work_dir, os.path.basename(paths["checkpoint"]), save_optimizer=False,
                           save_param_scheduler=False)
    # The plain ResNet's own keys, as an ImageNet file holds them (for TSM's 2D loader).
    torch.save(runner.model.backbone.state_dict(), paths["backbone"])
    return dict(paths, seconds=round(time.perf_counter() - start, 1),
                epoch_val_acc=progress.val_acc)


def run_row(name: str, work_dir: str, settings: Settings, stream=sys.stderr) -> dict:
    """Stage 2 for one row of :data:`ROWS`: fine-tune on the motion task."""
    row = ROWS[name]
    run_dir = os.path.join(work_dir, name.replace(" ", "_").replace("(", "").replace(")", ""))
    cfg = load_config(row.config, run_dir, settings, False)
    point_at_appearance_stage(cfg, checkpoint_paths(work_dir), row.pretrained)
    start = time.perf_counter()
    runner, progress = train(cfg, name, stream)
    return dict(config=row.config, pretrained=row.pretrained, epoch_val_acc=progress.val_acc,
                epoch_loss=progress.epoch_loss, seconds=round(time.perf_counter() - start, 1),
                params=sum(p.numel() for p in runner.model.parameters()))


def run_experiment(work_dir: str, settings: Settings = Settings(),
                   rows: Sequence[str] = tuple(ROWS), stream=sys.stderr) -> dict:
    """Stage 1, then every row; returns ``dict(appearance=..., rows={name: ...})``."""
    appearance = run_appearance_stage(work_dir, settings, stream)
    return dict(appearance=appearance,
                rows={name: run_row(name, work_dir, settings, stream) for name in rows})


def markdown_table(results: dict) -> str:
    rows = results["rows"]
    epochs = max(len(r["epoch_val_acc"]) for r in rows.values())
    head = "| model | init | " + " | ".join(f"ep {e + 1}" for e in range(epochs)) + " | params | seconds |"
    lines = [head, "|" + "---|" * (epochs + 4)]
    for name, row in rows.items():
        accs = [f"{100 * a:.1f}" for a in row["epoch_val_acc"]]
        accs += ["-"] * (epochs - len(accs))
        init = "appearance stage" if row["pretrained"] else "scratch"
        lines.append(f"| {name} | {init} | " + " | ".join(accs)
                     + f" | {row['params']:,} | {row['seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def plot_curves(results: dict, path: str) -> None:
    """Validation accuracy per epoch, one line per row, chance marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name, row in results["rows"].items():
        acc: List[float] = [100 * a for a in row["epoch_val_acc"]]
        ax.plot(range(1, len(acc) + 1), acc, "o-", label=name)
    ax.axhline(25, color="black", linewidth=0.8, linestyle=":", label="chance (4 directions)")
    ax.set(xlabel="epoch", ylabel="validation accuracy (%)", ylim=(0, 105),
           title="make motion: direction of an object moving over real footage")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

"""The CPNet paper's toy experiment (Table 1): each toy network trained and evaluated.

:func:`train_and_evaluate` trains one network of ``mmaction_configs/toy/`` (in a clone of the
repository) with mmengine's Runner and measures its accuracy on the whole training and
validation sets; :func:`markdown_table`, :func:`plot_table` and :func:`plot_curves` present the
results beside the paper's. ``make demo`` (``tools/toy_demo.py``) runs the five networks.
"""
import os
import time
from typing import Dict

from . import mmaction as _toy_registrations  # noqa: F401  (first: repairs mmaction2, registers)

from mmengine.config import Config  # noqa: E402
from mmengine.registry import RUNNERS  # noqa: E402
from mmengine.runner import Runner  # noqa: E402
from mmengine.runner.loops import TestLoop  # noqa: E402

#: The toy configs, in a clone of the repository.
CONFIG_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "mmaction_configs", "toy")
# name -> (config, paper train accuracy %, paper validation accuracy %)
TABLE1 = {
    "I3D-NL": ("i3d_nl_toy.py", 27.8, 26.4),
    "ARTNet": ("artnet_toy.py", 26.8, 25.9),
    "TRN": ("trn_toy.py", 27.1, 26.9),
    "CPNet": ("cpnet_toy.py", 97.9, 97.4),
    "C2D": ("c2d_toy.py", None, None),  # our control: the CPNet toy without its CP module
    # Not in the default run: CPNet under mmengine's mixed precision (bfloat16 on the CPU).
    "CPNet-AMP": ("cpnet_toy_amp.py", None, None),
}
DEFAULT_MODELS = ["I3D-NL", "ARTNet", "TRN", "CPNet", "C2D"]


def accuracy_on(runner: Runner, dataloader: dict) -> float:
    """Top-1 accuracy of the runner's current model on a whole dataset, in eval mode."""
    return TestLoop(runner, dataloader, runner.cfg.test_evaluator).run()["acc/top1"]


def set_padding_mode(node, mode: str) -> None:
    """Change the padding of every convolution layer config below ``node``."""
    if isinstance(node, dict):
        if "padding_mode" in node:
            node["padding_mode"] = mode
        for value in node.values():
            set_padding_mode(value, mode)
    elif isinstance(node, list):
        for value in node:
            set_padding_mode(value, mode)


def train_and_evaluate(name: str, work_dir: str, seed: int, max_epochs=None,
                       padding_mode=None, steps=None, progress=None) -> dict:
    """Train Table 1's network ``name`` (a key of :data:`TABLE1`) in ``work_dir/name`` and
    return its accuracy on the whole training and validation sets, its parameter count and
    seconds; ``max_epochs``, ``padding_mode`` and ``steps`` (the square's motion range) override
    the config's, ``progress`` (a :class:`cp_plugin.mmaction.runtime.progress.ProgressHook`)
    shows and records the run."""
    cfg = Config.fromfile(os.path.join(CONFIG_DIR, TABLE1[name][0]))
    cfg.work_dir = os.path.join(work_dir, name)
    cfg.randomness = dict(seed=seed)
    if max_epochs is not None:
        cfg.train_cfg.max_epochs = max_epochs
    if padding_mode is not None:
        set_padding_mode(cfg.model, padding_mode)
    if steps is not None:
        for loader in (cfg.train_dataloader, cfg.val_dataloader):
            loader.dataset.generator_cfg = dict(min_step=steps[0], max_step=steps[1])
    runner = RUNNERS.build(cfg)
    if progress is not None:
        runner.register_hook(progress)
    start = time.perf_counter()
    runner.train()
    seconds = time.perf_counter() - start
    train_set = dict(cfg.val_dataloader, dataset=dict(cfg.train_dataloader.dataset, test_mode=True))
    result = dict(train_acc=float(accuracy_on(runner, train_set)),
                  val_acc=float(accuracy_on(runner, cfg.val_dataloader)),
                  params=sum(p.numel() for p in runner.model.parameters()),
                  seconds=round(seconds, 1))
    if progress is not None:
        result.update(epoch_loss=progress.epoch_loss, epoch_val_acc=progress.val_acc)
    return result


def markdown_table(results: dict) -> str:
    def percent(value):
        return "-" if value is None else f"{value:.1f}"

    lines = ["| model | train acc | val acc | paper train | paper val | params | seconds |",
             "|---|---|---|---|---|---|---|"]
    for name, row in results.items():
        _, paper_train, paper_val = TABLE1[name]
        lines.append(f"| {name} | {100 * row['train_acc']:.1f} | {100 * row['val_acc']:.1f} | "
                     f"{percent(paper_train)} | {percent(paper_val)} | {row['params']:,} | "
                     f"{row['seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def plot_table(results: Dict[str, dict], path: str) -> None:
    """Table 1 as grouped bars: our train and validation accuracy, the paper's beside them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    series = [("ours, train", [results[n]["train_acc"] * 100 for n in names], "tab:blue"),
              ("ours, val", [results[n]["val_acc"] * 100 for n in names], "tab:orange"),
              ("paper, train", [TABLE1[n][1] for n in names], "lightsteelblue"),
              ("paper, val", [TABLE1[n][2] for n in names], "navajowhite")]
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(1.8 * len(names) + 3, 4.5))
    for i, (label, values, colour) in enumerate(series):
        shown = [(position + (i - 1.5) * width, value)
                 for position, value in enumerate(values) if value is not None]
        bars = ax.bar([p for p, _ in shown], [v for _, v in shown], width, label=label,
                      color=colour, edgecolor="grey", linewidth=0.5)
        ax.bar_label(bars, fmt="%.0f", fontsize=7)
    ax.axhline(25, color="black", linewidth=0.8, linestyle=":", label="chance (4 classes)")
    ax.set_xticks(range(len(names)), names)
    ax.set_ylim(0, 105)
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Toy experiment, Table 1: ours beside the paper")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_curves(results: Dict[str, dict], path: str) -> None:
    """Training loss and validation accuracy per epoch, one line per network."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for name, row in results.items():
        epochs = range(1, len(row.get("epoch_loss", [])) + 1)
        loss_ax.plot(epochs, row.get("epoch_loss", []), "o-", label=name)
        acc = [100 * a for a in row.get("epoch_val_acc", [])]
        acc_ax.plot(range(1, len(acc) + 1), acc, "o-", label=name)
    loss_ax.set(xlabel="epoch", ylabel="training loss (epoch mean)", title="Training loss")
    acc_ax.set(xlabel="epoch", ylabel="validation accuracy (%)", title="Validation accuracy",
               ylim=(0, 105))
    acc_ax.axhline(25, color="black", linewidth=0.8, linestyle=":")
    for ax in (loss_ax, acc_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

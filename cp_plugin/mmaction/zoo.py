"""mmaction2's model zoo beside CPNet: CP twins of zoo configs, and their cost and accuracy.

:func:`with_cp` is the config edit a user writes (README): ``CPBackbone`` with a placement preset,
or a ``CPNeck``. :func:`benchmark` measures each model and its twin (parameters, GMACs of one
test view by torch's ``FlopCounterMode``, inference clips/s, peak memory, a training step, the
published accuracy from the metafile or the CPNet paper, and with ``eval`` the accuracy of a
checkpoint on the user's data); :func:`write_outputs` writes ``zoo.md``, ``zoo.csv`` and
``zoo.png``. ``tools/zoo_benchmark.py`` is the command line.
"""
from __future__ import annotations

import copy
import csv
import dataclasses
import os
import os.path as osp
import re
import tempfile
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.config import Config

from ..measure import alternating_medians_of, peak_memory_bytes
from .runtime.runner import build_runner


@dataclasses.dataclass
class ZooSettings:
    """What :func:`benchmark` measures, and how (the command line's flags)."""

    with_cp: Optional[str] = None  #: a CPBackbone preset or 'neck': add each zoo model's CP twin
    frames: Optional[int] = None  #: frames per view (default: the config's)
    size: Optional[int] = None  #: frame side in pixels (default: the config's crop)
    batch: int = 1  #: views per inference call
    train_batch: int = 2  #: clips per training step
    repeats: int = 3  #: timed runs (median)
    device: str = "cpu"
    eval: bool = False  #: measure accuracy on the user's data
    ann_file: Optional[str] = None
    data_prefix: Optional[str] = None
    checkpoints: Optional[Sequence[str]] = None  #: one per model, with ``eval``
    out_dir: str = osp.join("work_dirs", "zoo")


ZOO_PREFIX = "mmaction::"
# Our configs' accuracy in the CPNet paper: config file -> (top-1, top-5, where). Table 3(d)'s
# ResNet-18 Kinetics figures are not listed: the paper's layout of that table is ambiguous.
PAPER = {
    "cpnet_r101_32x2_kinetics400_phase3.py": (75.3, 92.4, "paper Table 4"),
    "nl-c2d_r101_32x2_kinetics400_phase3.py": (75.1, 91.7, "paper Table 4 (NL paper's)"),
    "cpnet_r18_24x1_sthv2_phase2.py": (54.08, 82.10, "paper Table 5(a), val"),
    "cpnet_r34_24x1_sthv2_phase2.py": (57.65, 83.95, "paper Table 5(a), val"),
    "c2d_r18_24x1_sthv2_phase2.py": (35.24, 64.49, "paper Table 5(a), val"),
    "c2d_r34_24x1_sthv2_phase2.py": (39.64, 69.61, "paper Table 5(a), val"),
    "cpnet_r34_24x1_jester_phase2.py": (96.70, None, "paper Table 5(b), val"),
    "c2d_r34_24x1_jester_phase2.py": (84.73, None, "paper Table 5(b), val"),
}
CROPS = ("CenterCrop", "ThreeCrop", "TenCrop")
#: What :func:`published` says of a model nobody published figures for.
UNPUBLISHED = dict(top1=None, top5=None, source=None, gflops=None, params_m=None)


def load_config(name: str) -> Config:
    """A zoo config by its ``mmaction::`` name (as a one-line config inheriting it), or a file."""
    if name.startswith(ZOO_PREFIX):
        folder = tempfile.mkdtemp(prefix="zoo_")
        path = osp.join(folder, osp.basename(name))
        with open(path, "w") as f:
            f.write(f"_base_ = [{name!r}]\n")
        return Config.fromfile(path)
    if not osp.isfile(name):
        raise FileNotFoundError(f"no config {name!r}: pass a zoo name such as "
                                f"'mmaction::recognition/tsm/<config>.py' or a config file path")
    return Config.fromfile(name)


def zoo_file(name: str) -> Optional[str]:
    """The installed file of a zoo config name, or None for our own configs."""
    if not name.startswith(ZOO_PREFIX):
        return None
    import mmaction

    return osp.join(osp.dirname(mmaction.__file__), ".mim", "configs", name[len(ZOO_PREFIX):])


_SCALES = {"": 1.0, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


def _number(text, unit: str = "") -> Optional[float]:
    """A metafile figure in ``unit`` (G, M or none): '33G', '24.3M', or a plain 2967543760."""
    match = re.match(r"\s*([\d.]+)\s*([KMGT]?)", str(text)) if text is not None else None
    if not match:
        return None
    return float(match.group(1)) * _SCALES[match.group(2)] / _SCALES[unit]


def published(name: str) -> dict:
    """Published figures of a model: the metafile entry of a zoo config (top-1, top-5, FLOPs in
    G and parameters in M as it states them), or the CPNet paper's accuracy for ours."""
    path = zoo_file(name)
    if path is None:
        top1, top5, source = PAPER.get(osp.basename(name), (None, None, None))
        return dict(UNPUBLISHED, top1=top1, top5=top5, source=source)
    import yaml

    metafile = osp.join(osp.dirname(path), "metafile.yml")
    if not osp.isfile(metafile):
        raise FileNotFoundError(f"{name}: no metafile.yml beside it in {osp.dirname(path)}")
    with open(metafile) as f:
        models = yaml.safe_load(f).get("Models", [])
    for model in models:
        if osp.basename(model.get("Config", "")) == osp.basename(path):
            results = (model.get("Results") or [{}])[0]
            metrics = results.get("Metrics", {})
            meta = model.get("Metadata", {})
            return dict(top1=_number(metrics.get("Top 1 Accuracy")),
                        top5=_number(metrics.get("Top 5 Accuracy")),
                        source=f"metafile ({results.get('Dataset', '?')})",
                        gflops=_number(meta.get("FLOPs"), "G"),
                        params_m=_number(meta.get("Parameters"), "M"))
    return dict(UNPUBLISHED, source="not in metafile")


def _step(pipeline: list, kinds) -> Optional[dict]:
    return next((step for step in pipeline if any(k in step["type"] for k in kinds)), None)


def _side(value) -> int:
    return int(value if isinstance(value, int) else max(value))


def is_2d(cfg: Config) -> bool:
    """Whether ``cfg`` is a Recognizer2D (TSN, TSM): frames as segments."""
    return cfg.model.type == "Recognizer2D"


def view_shape(pipeline: list, frames: Optional[int] = None,
               size: Optional[int] = None) -> Tuple[int, int]:
    """(frames, side) of one view of ``pipeline``: a clip (``clip_len`` frames), or for segment
    sampling (``clip_len=1``, TSN/TSM) all ``num_clips`` segments, which one view holds; the
    side is the crop's (or the last resize's short side)."""
    sampler = _step(pipeline, ("SampleFrames",))
    if sampler is None:
        raise ValueError("the pipeline has no SampleFrames step to read the clip length from")
    clip_len = sampler.get("clip_len", 1)
    count = clip_len if clip_len > 1 else sampler.get("num_clips", 1)
    crop = _step(pipeline, CROPS + ("RandomResizedCrop", "MultiScaleCrop"))
    if crop is not None and crop["type"] in CROPS:
        side = _side(crop["crop_size"])
    else:
        resize = [step for step in pipeline if step["type"] == "Resize"]
        side = _side(resize[-1]["scale"]) if resize else 224
    return frames or count, size or side


def segments_per_view(cfg: Config, frames: Optional[int]) -> Config:
    """A 2D model whose backbone or head fixes its segment count (TSM's) made to take
    ``frames`` segments, as ``--frames`` asks; other models take any number as they are."""
    if frames and is_2d(cfg):
        import inspect

        from mmaction.registry import MODELS

        for part in (cfg.model.backbone, cfg.model.cls_head):
            if "num_segments" in inspect.signature(MODELS.get(part.type)).parameters:
                part.num_segments = frames
    return cfg


def with_cp(cfg: Config, placement: str, frames: Optional[int] = None) -> Config:
    """The CP twin of a zoo model, by the config edit the README shows; ``frames`` overrides the
    segments per view of a 2D model (as ``--frames`` does for the measurement)."""
    cfg = copy.deepcopy(cfg)
    model = cfg.model
    if placement == "neck":
        neck = dict(type="CPNeck", in_channels=output_channels(cfg))
        if is_2d(cfg):
            model.backbone.out_indices = (2, 3)  # Recognizer2D regroups only tuples into clips
            segments = view_shape(cfg.test_dataloader.dataset.pipeline, frames)[0]
            if "num_segments" in model.cls_head:  # TSM's head reshapes by its own count
                segments = model.cls_head.num_segments
                model.cls_head.num_segments = 1
            neck["num_segments"] = segments
        model.neck = neck
        return cfg
    backbone = dict(type="CPBackbone", backbone=model.backbone.to_dict(), cp_blocks=placement)
    if is_2d(cfg) and model.backbone.type == "ResNet":  # TSN: frames come as segments
        train = cfg.get("train_dataloader") or cfg.test_dataloader
        backbone["num_segments"] = view_shape(train.dataset.pipeline, frames)[0]
        backbone["test_num_segments"] = view_shape(cfg.test_dataloader.dataset.pipeline,
                                                   frames)[0]
    model.backbone = backbone
    return cfg


def output_channels(cfg: Config) -> int:
    """C of the backbone's last output map, from a forward on a small input."""
    model = build(cfg)
    x = inputs(cfg, 8, 64)
    with torch.no_grad():
        out = model.backbone(x.flatten(0, 1))
    while isinstance(out, (tuple, list)):
        out = out[-1] if isinstance(out, tuple) else out[0]
    return out.shape[1]


def build(cfg: Config, device: str = "cpu") -> torch.nn.Module:
    """The model of ``cfg`` in eval mode, with no ImageNet download (random weights)."""
    from mmaction.registry import MODELS
    from mmengine.registry import init_default_scope

    init_default_scope("mmaction")
    model_cfg = copy.deepcopy(cfg.model)
    without_downloads(model_cfg)
    return MODELS.build(model_cfg).to(device).eval()


def without_downloads(node) -> None:
    """Switch off every ImageNet ``pretrained`` weight of a model config in place (and TSM's
    ``pretrained2d``): no hub here, and the weights do not change the costs."""
    if isinstance(node, dict):
        if isinstance(node.get("pretrained"), str):
            node["pretrained"] = None
            for flag in ("pretrained2d", "torchvision_pretrain"):
                if flag in node:
                    node[flag] = False
        for value in node.values():
            without_downloads(value)
    elif isinstance(node, list):
        for value in node:
            without_downloads(value)


def inputs(cfg: Config, frames: int, side: int, batch: int = 1, device: str = "cpu") -> torch.Tensor:
    """Normalised-scale random views: (N, 1, 3, T, S, S), or (N, T, 3, S, S) for 2D models."""
    shape = (batch, frames, 3, side, side) if is_2d(cfg) else (batch, 1, 3, frames, side, side)
    return torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(device)


def macs(model: torch.nn.Module, x: torch.Tensor) -> int:
    """Multiply-adds of one forward (backbone, neck, head) by torch's ``FlopCounterMode``."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model.extract_feat(x, stage="head")
    return counter.get_total_flops() // 2


def train_step(cfg: Config, model: torch.nn.Module, frames: int, side: int, batch: int,
               device: str):
    """One SGD step on random uint8 views through the model's data preprocessor."""
    from mmaction.structures import ActionDataSample
    from mmengine.optim import OptimWrapper

    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=1e-5))
    shape = (frames, 3, side, side) if is_2d(cfg) else (1, 3, frames, side, side)
    generator = torch.Generator().manual_seed(0)
    data = dict(inputs=[torch.randint(0, 256, shape, generator=generator, dtype=torch.uint8)
                        for _ in range(batch)],
                data_samples=[ActionDataSample().set_gt_label(0) for _ in range(batch)])

    def step():
        model.train()
        model.train_step(data, optim)
    return step


def measure(name: str, cfg: Config, settings: ZooSettings) -> dict:
    """One row of the table: parameters, GMACs, inference clips/s, peak memory, training step."""
    model = build(cfg, settings.device)
    frames, side = view_shape(cfg.test_dataloader.dataset.pipeline, settings.frames, settings.size)
    x = inputs(cfg, frames, side, settings.batch, settings.device)
    row = dict(model=name, params_m=sum(p.numel() for p in model.parameters()) / 1e6,
               input=f"{frames}x{side}x{side}",
               gmacs=macs(model, x[:1]) / 1e9)
    device = torch.device(settings.device)

    def infer():
        model.eval()  # after a training step: test views and running statistics again
        with torch.no_grad():
            model.extract_feat(x, stage="head")
    # Configs converted from other codebases (X3D's) have no training pipeline: train on views.
    train = cfg.get("train_dataloader") or cfg.test_dataloader
    train_frames, _ = view_shape(train.dataset.pipeline, settings.frames)
    step = train_step(cfg, model, train_frames, side, settings.train_batch, settings.device)
    seconds = alternating_medians_of(dict(infer=infer, train=step), repeats=settings.repeats,
                                     device=device)
    row.update(clips_per_s=settings.batch / seconds["infer"], train_step_s=seconds["train"],
               peak_mib=peak_memory_bytes(infer, device) / 2 ** 20)
    return row


def evaluate(cfg: Config, checkpoint: str, settings: ZooSettings) -> dict:
    """top-1/top-5 (%) of ``checkpoint`` on the user's data (``settings.ann_file`` and
    ``data_prefix``), by mmaction2's test loop."""
    cfg = copy.deepcopy(cfg)
    without_downloads(cfg.model)
    dataset = cfg.test_dataloader.dataset
    dataset.ann_file = settings.ann_file
    key = "img" if dataset.type == "RawframeDataset" else "video"
    dataset.data_prefix = {key: settings.data_prefix}
    cfg.test_dataloader.update(num_workers=0, persistent_workers=False)
    cfg.load_from = checkpoint
    cfg.work_dir = osp.join(settings.out_dir, "eval", osp.splitext(osp.basename(checkpoint))[0])
    cfg.launcher = "none"
    metrics = build_runner(cfg).test()  # WeightsOnlyRunner: zoo checkpoints, weights_only
    return dict(eval_top1=100 * metrics["acc/top1"], eval_top5=100 * metrics["acc/top5"])


def benchmark(models: List[str], settings: ZooSettings) -> List[dict]:
    """The table's rows: each model, and its CP twin with ``settings.with_cp``."""
    rows = []
    checkpoints = dict(zip(models, settings.checkpoints or []))
    for name in models:
        cfg = segments_per_view(load_config(name), settings.frames)
        twins = [(name, cfg)]
        if settings.with_cp and name.startswith(ZOO_PREFIX):
            twin = with_cp(cfg, settings.with_cp, settings.frames)
            twins.append((f"{name} + CP ({settings.with_cp})", twin))
        for label, config in twins:
            print(f"measuring {label}", flush=True)
            try:
                row = measure(label, config, settings)
            except (ValueError, TypeError) as error:  # CP refused (T fell to 1, no such block)
                if config is cfg:
                    raise
                print(f"  {label}: {error}", flush=True)
                rows.append(dict(model=label, note=re.split(r"(?<=\.) |;", str(error))[0]))
                continue
            paper = published(name) if config is cfg else UNPUBLISHED  # an untrained twin
            row.update(published_top1=paper["top1"], published_top5=paper["top5"],
                       source=paper["source"], metafile_gflops=paper["gflops"],
                       metafile_params_m=paper["params_m"])
            if settings.eval and config is cfg and name in checkpoints:
                row.update(evaluate(config, checkpoints[name], settings))
            rows.append(row)
    return rows


COLUMNS = [("model", "model", "{}"), ("params_m", "params (M)", "{:.2f}"),
           ("metafile_params_m", "metafile params (M)", "{:g}"), ("input", "test view", "{}"),
           ("gmacs", "GMACs (ours)", "{:.2f}"), ("metafile_gflops", "metafile GFLOPs", "{:g}"),
           ("clips_per_s", "inference clips/s", "{:.2f}"), ("peak_mib", "peak MiB", "{:.0f}"),
           ("train_step_s", "train step s", "{:.2f}"), ("published_top1", "top-1", "{:g}"),
           ("published_top5", "top-5", "{:g}"), ("source", "accuracy from", "{}"),
           ("eval_top1", "eval top-1", "{:.1f}"), ("eval_top5", "eval top-5", "{:.1f}"),
           ("note", "note", "{}")]


def _cell(row: dict, key: str, fmt: str) -> str:
    value = row.get(key)
    return "-" if value is None else fmt.format(value)


def markdown(rows: List[dict]) -> str:
    """The table, config names shortened to their file names (the CSV keeps them whole)."""
    columns = [c for c in COLUMNS if any(row.get(c[0]) is not None for row in rows)]
    lines = ["| " + " | ".join(title for _, title, _ in columns) + " |",
             "|" + "---|" * len(columns)]
    for row in rows:
        row = dict(row, model=re.sub(r"^.*/|\.py", "", row["model"]))
        lines.append("| " + " | ".join(_cell(row, key, fmt) for key, _, fmt in columns) + " |")
    return "\n".join(lines) + "\n"


def write_outputs(rows: List[dict], out_dir: str) -> Dict[str, str]:
    os.makedirs(out_dir, exist_ok=True)
    paths = {kind: osp.join(out_dir, f"zoo.{kind}") for kind in ("md", "csv", "png")}
    with open(paths["md"], "w") as f:
        f.write(markdown(rows))
    with open(paths["csv"], "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[key for key, _, _ in COLUMNS])
        writer.writeheader()
        writer.writerows([{key: row.get(key) for key, _, _ in COLUMNS} for row in rows])
    plot(rows, paths["png"])
    return paths


def short_name(name: str) -> str:
    """'tsm r50 (sthv2)' style labels for the plot."""
    base = osp.splitext(osp.basename(name))[0]
    depth = re.search(r"[-_](r\d+)(?=[-_]|$)", base)
    dataset = next((d for d in ("sthv2", "kinetics400", "jester") if d in base), None)
    label = base.split("_")[0] + (f" {depth.group(1)}" if depth else "")
    return f"{label} ({dataset})" if dataset else label


def plot(rows: List[dict], path: str) -> None:
    """Accuracy (measured if --eval, else published) against GMACs; marker area ~ parameters.
    Rows without an accuracy (untrained twins) are in the table, not the plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    for row in rows:
        accuracy = row.get("eval_top1", row.get("published_top1"))
        if accuracy is None or "gmacs" not in row:
            continue
        ax.scatter(row["gmacs"], accuracy, s=8 * row["params_m"], alpha=0.6)
        ax.annotate(short_name(row["model"]), (row["gmacs"], accuracy), fontsize=8,
                    xytext=(5, 5), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("GMACs per test view (torch FlopCounterMode), log scale")
    ax.set_ylabel("top-1 (%)")
    ax.set_title("Published top-1 against cost (marker area ~ parameters)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)



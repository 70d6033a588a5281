"""What CP needs to learn motion, measured cheaply: one CP module on frozen features.

The appearance stage's C2D-R18 (its checkpoint) runs once over the motion clips up to a chosen
stage; a fresh :class:`~cp_plugin.CPModule` (identity at the start) and a linear head on its
average-pooled output then train on those cached features alone. Every choice the full
fine-tuning faces (training clips, steps, learning rate, the output BN's initial value, k, the
stage and its shrink, the frame size) costs seconds to try here instead of minutes.
``tools/motion.py --probe`` is its command line.
"""
from __future__ import annotations

import time
from typing import Dict, List, NamedTuple, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..cp_module import CPModule
from .clips import motion_clips, read_footage

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


class ProbeSettings(NamedTuple):
    stage: str = "layer3"  # the CP module's input: the output of layer1, layer2 or layer3
    train_clips: int = 2000
    val_clips: int = 200
    steps: int = 400
    batch_size: int = 16
    lr: float = 1e-3
    out_bn_init: float = 0.0  # the output BN's weight at the start (0: identity)
    k: int = 8
    shrink: int = 1
    size: int = 64
    num_frames: int = 4
    seed: int = 0
    pretrained: bool = True  # the appearance stage's features (else a freshly initialised net)


def load_appearance_backbone(checkpoint: Optional[str], seed: int = 0) -> nn.Module:
    """mmaction2's ResNet-18 with the appearance stage's backbone weights (``None``: as
    initialised, from ``seed``), in eval mode."""
    from mmaction.models.backbones import ResNet

    torch.manual_seed(seed)
    backbone = ResNet(depth=18, pretrained=None)
    backbone.init_weights()
    backbone.eval()  # (mmaction2's ResNet.train returns None: no chaining)
    if checkpoint is None:
        return backbone
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    state = state.get("state_dict", state)
    weights = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
    backbone.load_state_dict(weights or state)
    return backbone


@torch.no_grad()
def stage_features(backbone: nn.Module, videos: np.ndarray, stage: str,
                   batch: int = 50) -> torch.Tensor:
    """(V, C, T, H, W) features after ``stage`` of uint8 clips (V, T, S, S, 3)."""
    stages = ["layer1", "layer2", "layer3", "layer4"]
    if stage not in stages:
        raise ValueError(f"stage must be one of {stages}, got {stage!r}")
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    out = []
    for start in range(0, len(videos), batch):
        clips = torch.from_numpy(videos[start:start + batch])
        num_clips, num_frames = clips.shape[:2]
        x = (clips.flatten(0, 1).permute(0, 3, 1, 2).float() - mean) / std
        x = backbone.maxpool(backbone.conv1(x))
        for name in stages[:stages.index(stage) + 1]:
            x = getattr(backbone, name)(x)
        out.append(x.view(num_clips, num_frames, *x.shape[1:]).transpose(1, 2))
    return torch.cat(out)


#: The settings that decide the cached features; the others only change the training.
DATA_FIELDS = ("stage", "train_clips", "val_clips", "size", "num_frames", "seed", "pretrained")


def probe_data(checkpoint: str, footage: str, settings: ProbeSettings) -> tuple:
    """(train features, train labels, val features, val labels) for ``settings``."""
    s = settings
    clip_cfg = dict(num_frames=s.num_frames, size=s.size, patch=s.size // 4,
                    min_step=s.size // 8, max_step=s.size // 4)
    video = read_footage(footage)
    train = motion_clips(video, s.train_clips, s.seed, **clip_cfg)
    val = motion_clips(video, s.val_clips, s.seed + 1, **clip_cfg)
    backbone = load_appearance_backbone(checkpoint if s.pretrained else None, s.seed)
    return (stage_features(backbone, train.videos, s.stage), torch.from_numpy(train.labels),
            stage_features(backbone, val.videos, s.stage), torch.from_numpy(val.labels))


def run_probes(checkpoint: str, footage: str, settings: List[ProbeSettings],
               log_every: int = 50, stream=None) -> List[Dict[str, List[float]]]:
    """:func:`run_probe` for each settings, computing features once per distinct data."""
    histories, data, data_key = [], None, None
    for one in settings:
        key = tuple(getattr(one, name) for name in DATA_FIELDS)
        if key != data_key:
            data, data_key = probe_data(checkpoint, footage, one), key
        if stream is not None:
            print(f"CP probe on frozen features ({describe(one)}):", file=stream, flush=True)
        histories.append(run_probe(data, one, log_every, stream))
    return histories


def run_probe(data: tuple, settings: ProbeSettings = ProbeSettings(), log_every: int = 50,
              stream=None) -> Dict[str, List[float]]:
    """Train a CP module and a linear head on frozen features (:func:`probe_data`); validation
    accuracy every ``log_every`` steps (``dict(step=[...], val_acc=[...], train_loss=[...])``)."""
    s = settings
    train_x, train_y, val_x, val_y = data

    torch.manual_seed(s.seed)
    cp = CPModule(train_x.shape[1], k=s.k, shrink=s.shrink)
    nn.init.constant_(cp.out_norm.weight, s.out_bn_init)
    head = nn.Linear(train_x.shape[1], 4)
    optimizer = torch.optim.Adam([*cp.parameters(), *head.parameters()], lr=s.lr)

    def logits(x):
        return head(F.relu(cp(x)).mean((2, 3, 4)))

    history: Dict[str, List[float]] = dict(step=[], val_acc=[], train_loss=[])
    losses: List[float] = []
    generator = torch.Generator().manual_seed(s.seed)
    start = time.perf_counter()
    for step in range(1, s.steps + 1):
        cp.train()
        index = torch.randint(len(train_x), (s.batch_size,), generator=generator)
        loss = F.cross_entropy(logits(train_x[index]), train_y[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        if step % log_every == 0 or step == s.steps:
            cp.eval()
            with torch.no_grad():
                accuracy = float((logits(val_x).argmax(1) == val_y).float().mean())
            history["step"].append(step)
            history["val_acc"].append(accuracy)
            history["train_loss"].append(float(np.mean(losses[-log_every:])))
            if stream is not None:
                print(f"  step {step}: train loss {history['train_loss'][-1]:.3f}, "
                      f"val {100 * accuracy:.1f}% ({time.perf_counter() - start:.0f} s)",
                      file=stream, flush=True)
    return history


def describe(settings: ProbeSettings, defaults: Optional[ProbeSettings] = None) -> str:
    """The settings that differ from the defaults, as ``name=value`` (``'defaults'`` if none)."""
    defaults = defaults or ProbeSettings()
    changed = [f"{k}={v}" for k, v in settings._asdict().items() if getattr(defaults, k) != v]
    return ", ".join(changed) or "defaults"

"""Shared fixtures: small real videos, raw-frame folders and ImageNet-style checkpoints."""
import logging
import os

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def quiet_mmengine():
    """mmengine logs every parameter's init at INFO; keep test output readable."""
    try:
        from mmengine.logging import MMLogger
    except ImportError:
        yield
        return
    MMLogger.get_instance("mmengine").setLevel(logging.WARNING)
    yield


@pytest.fixture
def mmaction_scope():
    """mmaction2's default scope for a test that builds from its registries by type name,
    whatever ran before it in this process (under pytest-xdist the order of tests differs from
    run to run, and one worker met another scope left current)."""
    from mmengine.registry import init_default_scope

    init_default_scope("mmaction")


@pytest.fixture
def cpu_paths():
    """``cpu_paths(**changes)``: CP takes CPU_PATHS with ``changes`` on the CPU for one test;
    ``cpu_paths(ACCELERATOR_PATHS, ...)`` starts from a GPU's paths (cp_plugin.device_paths)."""
    from cp_plugin.device_paths import CPU_PATHS, set_device_paths

    def select(base=CPU_PATHS, **changes):
        set_device_paths("cpu", base.replace(**changes))

    yield select
    set_device_paths("cpu", None)


def moving_square_frames(num_frames: int, height: int, width: int, seed: int) -> np.ndarray:
    """(T, H, W, 3) uint8 frames of a bright square moving over noise, so clips differ in time."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 60, size=(num_frames, height, width, 3), dtype=np.uint8)
    for t in range(num_frames):
        y, x = (3 * t + seed * 7) % (height - 8), (5 * t + seed * 11) % (width - 8)
        frames[t, y:y + 8, x:x + 8] = 255
    return frames


def write_video(path, num_frames=40, height=48, width=64, seed=0) -> None:
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 12, (width, height))
    for frame in moving_square_frames(num_frames, height, width, seed):
        writer.write(frame)
    writer.release()
    if not os.path.getsize(path):
        raise RuntimeError(f"OpenCV wrote an empty video to {path}")


def write_rawframes(folder, num_frames=40, height=48, width=64, seed=0) -> None:
    import cv2

    os.makedirs(folder, exist_ok=True)
    for t, frame in enumerate(moving_square_frames(num_frames, height, width, seed), start=1):
        cv2.imwrite(os.path.join(folder, f"{t:05}.jpg"), frame)


@pytest.fixture(scope="session")
def video_data(tmp_path_factory):
    """Three labelled .mp4 clips plus annotation files in mmaction2's VideoDataset format."""
    root = tmp_path_factory.mktemp("videos")
    for i in range(3):
        write_video(root / f"clip_{i}.mp4", seed=i)
    (root / "train.txt").write_text("clip_0.mp4 0\nclip_1.mp4 1\n")
    (root / "test.txt").write_text("clip_2.mp4 2\n")
    return root


@pytest.fixture(scope="session")
def rawframe_data(tmp_path_factory):
    """Three labelled raw-frame folders plus annotation files in RawframeDataset format."""
    root = tmp_path_factory.mktemp("rawframes")
    for i in range(3):
        write_rawframes(root / f"clip_{i}", seed=i)
    (root / "train.txt").write_text("clip_0 40 0\nclip_1 40 1\n")
    (root / "test.txt").write_text("clip_2 40 2\n")
    return root


@pytest.fixture(scope="session")
def imagenet_checkpoint(tmp_path_factory):
    """A function depth -> path of a torchvision ResNet state dict (random weights), cached."""
    import torchvision

    root = tmp_path_factory.mktemp("imagenet")
    paths = {}

    def make(depth: int) -> str:
        if depth not in paths:
            torch.manual_seed(depth)
            model = getattr(torchvision.models, f"resnet{depth}")(weights=None)
            paths[depth] = str(root / f"resnet{depth}.pth")
            torch.save(model.state_dict(), paths[depth])
        return paths[depth]

    return make

"""The toy experiment: moving-square data, the Table 1 networks, and learning on a small budget."""
import glob
import os

import numpy as np
import pytest
import torch

import cp_plugin  # noqa: F401
from cp_plugin.moving_square import DIRECTIONS, generate_moving_squares
from mmaction.registry import DATASETS
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

init_default_scope("mmaction")
TOY = os.path.join(os.path.dirname(__file__), "..", "mmaction_configs", "toy")
TOY_CONFIGS = sorted(glob.glob(os.path.join(TOY, "*.py")))


def test_labels_balanced_and_motion_as_described():
    squares = generate_moving_squares(1000, seed=0)
    assert squares.videos.shape == (1000, 4, 32, 32) and squares.videos.dtype == np.uint8
    assert np.bincount(squares.labels).tolist() == [250] * 4
    rows, cols = squares.positions[..., 0], squares.positions[..., 1]
    assert rows.min() >= 0 and cols.min() >= 0 and rows.max() <= 30 and cols.max() <= 30
    step = np.diff(squares.positions, axis=1)  # (V, 3, 2)
    expected_axis = {0: 1, 1: 1, 2: 0, 3: 0}
    expected_sign = {0: -1, 1: 1, 2: -1, 3: 1}
    for v in range(1000):
        label = squares.labels[v]
        moving, still = step[v, :, expected_axis[label]], step[v, :, 1 - expected_axis[label]]
        assert (still == 0).all()
        assert (np.sign(moving) == expected_sign[label]).all()
        assert (np.abs(moving) >= 7).all() and (np.abs(moving) <= 9).all()
    # Each frame shows exactly the 2x2 square at its recorded position.
    assert (squares.videos.reshape(1000, 4, -1) == 255).sum(-1).tolist() == [[4] * 4] * 1000
    v, t = 7, 2
    r, c = squares.positions[v, t]
    assert (squares.videos[v, t, r:r + 2, c:c + 2] == 255).all()
    assert {int(s) for s in np.abs(step).max(-1).ravel()} == {7, 8, 9}


def test_generation_is_determined_by_the_seed():
    a, b, c = (generate_moving_squares(40, seed=s) for s in (3, 3, 4))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a.videos, c.videos)


@pytest.mark.parametrize("kwargs,match", [
    (dict(num_videos=10, seed=0), "multiple of 4"),
    (dict(num_videos=8, seed=0, size=20), "does not fit a canvas of size=20"),
    (dict(num_videos=8, seed=0, max_step=5), "max_step must be >= 7"),
])
def test_bad_generator_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        generate_moving_squares(**kwargs)


def test_dataset_feeds_the_standard_pipeline():
    dataset = DATASETS.build(dict(
        type="MovingSquareDataset", num_videos=8, seed=0,
        pipeline=[dict(type="FormatShape", input_format="NCTHW"), dict(type="PackActionInputs")]))
    assert len(dataset) == 8 and dataset.metainfo["classes"] == DIRECTIONS
    sample = dataset[3]
    squares = generate_moving_squares(8, seed=0)
    assert sample["inputs"].shape == (1, 1, 4, 32, 32)
    assert torch.equal(sample["inputs"][0, 0], torch.from_numpy(squares.videos[3]))
    assert int(sample["data_samples"].gt_label) == squares.labels[3]


@pytest.mark.parametrize("path", TOY_CONFIGS, ids=os.path.basename)
def test_toy_model_builds_and_trains_one_iteration(path, tmp_path):
    cfg = Config.fromfile(path)
    cfg.work_dir = str(tmp_path)
    cfg.train_dataloader.dataset.num_videos = 32
    cfg.val_dataloader.dataset.num_videos = 8
    cfg.test_dataloader = cfg.val_dataloader
    cfg.train_cfg.max_epochs = 1
    runner = Runner.from_cfg(cfg)
    before = {k: v.clone() for k, v in runner.model.state_dict().items()}
    runner.train()
    assert runner.iter == 1
    changed = [k for k, v in runner.model.state_dict().items()
               if v.is_floating_point() and not torch.equal(v, before[k])]
    assert any("cls_head" in k for k in changed) and any("backbone" in k for k in changed)


def small_run(config, tmp_path):
    """A reduced task: 320 training videos, 6 epochs, validation on 100 fresh videos."""
    from tools.toy_demo import accuracy_on

    cfg = Config.fromfile(os.path.join(TOY, config))
    cfg.work_dir = str(tmp_path)
    cfg.train_dataloader.dataset.num_videos = 320
    cfg.val_dataloader.dataset.num_videos = 100
    cfg.train_cfg = dict(type="EpochBasedTrainLoop", max_epochs=6, val_interval=100)
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", interval=100)
    runner = Runner.from_cfg(cfg)
    runner.train()
    return accuracy_on(runner, cfg.val_dataloader)


def test_cpnet_learns_where_the_control_cannot(tmp_path):
    # Chance is 25%, +-4.3 points (one standard deviation) on 100 videos. On this budget CPNet is
    # still climbing (62% measured; 100% after the full demo's 8 epochs of 1000 videos).
    cpnet = small_run("cpnet_toy.py", tmp_path / "cpnet")
    control = small_run("c2d_toy.py", tmp_path / "c2d")
    assert cpnet >= 0.40, cpnet
    assert control <= 0.33, control
    # mmengine's mixed precision (bfloat16 autocast on the CPU) learns too: 50% measured. Mid-climb
    # the two drift apart (rounding moves the steep part of the curve), so the band is checked
    # here and the end point in `tools/toy_demo.py --models CPNet-AMP` (100%, as float32).
    mixed = small_run("cpnet_toy_amp.py", tmp_path / "amp")
    assert mixed >= 0.40, mixed

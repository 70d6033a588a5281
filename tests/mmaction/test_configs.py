"""Every shipped paper config: one training and one test iteration through mmengine's Runner."""
import glob
import math
import os

import pytest

import cp_plugin.mmaction  # noqa: F401  (before mmaction2 builds anything)
from mmengine.config import Config
from mmengine.runner import Runner

from shrink import shrink_config

pytestmark = pytest.mark.slow  # see setup.cfg: left out by make test-quick

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "mmaction_configs")
CONFIGS = sorted(p for p in glob.glob(os.path.join(ROOT, "**", "*.py"), recursive=True)
                 if "_base_" not in p and os.sep + "toy" + os.sep not in p
                 and os.sep + "motion" + os.sep not in p)  # tests/motion runs those


def test_every_dataset_has_configs():
    names = {os.path.relpath(p, ROOT) for p in CONFIGS}
    assert len([n for n in names if n.startswith("kinetics400")]) == 14
    assert len([n for n in names if n.startswith("sthv2")]) == 9
    assert len([n for n in names if n.startswith("jester")]) == 5


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: os.path.relpath(p, ROOT))
def test_config_trains_and_tests(path, tmp_path, video_data, rawframe_data, imagenet_checkpoint):
    cfg = shrink_config(Config.fromfile(path), tmp_path, video_data, rawframe_data,
                        imagenet_checkpoint)
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 1
    loss = runner.message_hub.get_scalar("train/loss").current()
    assert math.isfinite(loss)
    metrics = runner.test()
    assert 0.0 <= metrics["acc/top1"] <= 1.0
    assert os.path.exists(tmp_path / "epoch_1.pth")

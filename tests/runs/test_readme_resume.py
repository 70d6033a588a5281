"""The README's mmaction2 config, trained with this repo's tools/train.py and with mmaction2's
own, validating every epoch, stops, resumes with --resume and ends exactly where an
uninterrupted run ends."""
import importlib.util
import os

import pytest
import torch
from mmengine.config import Config

from readme import write_readme_config
from shrink import shrink_config
from test_resume import assert_states_equal
from test_tools import run_tool
from toy_runs import load_run_checkpoint

pytestmark = pytest.mark.slow  # see setup.cfg: left out by make test-quick

OURS = "tools/train.py"
MMACTION2S = os.path.join(importlib.util.find_spec("mmaction").submodule_search_locations[0],
                          ".mim", "tools", "train.py")


@pytest.fixture(scope="module")
def readme_run(tmp_path_factory, video_data, rawframe_data, imagenet_checkpoint):
    """The README config on the generated videos (local ImageNet weights, one iteration an
    epoch, 2 epochs, validation after each), and the final state of an uninterrupted run."""
    root = tmp_path_factory.mktemp("readme_run")
    cfg = Config.fromfile(write_readme_config(r"# my_cpnet_c2d_r50\.py\n", root / "readme.py"))
    cfg = shrink_config(cfg, root / "unused", video_data, rawframe_data, imagenet_checkpoint,
                       validate=True)
    cfg.train_cfg.max_epochs = 2
    # Persistent workers, as the stock config trains: their streams outlive an epoch.
    cfg.train_dataloader.update(num_workers=1, persistent_workers=True)
    config = str(root / "config.py")
    cfg.dump(config)
    run_tool(OURS, config, "--work-dir", str(root / "whole"))
    return config, final_state(root / "whole")


def final_state(work):
    checkpoint = load_run_checkpoint(work / "epoch_2.pth")
    return checkpoint["state_dict"], checkpoint["optimizer"]["state"]


@pytest.mark.parametrize("tool", [OURS, MMACTION2S], ids=["ours", "mmaction2s"])
def test_readme_config_resumes_to_the_uninterrupted_result(readme_run, tmp_path, tool):
    config, whole = readme_run
    work = tmp_path / "work"
    run_tool(tool, config, "--work-dir", str(work), "--cfg-options", "train_cfg.max_epochs=1")
    assert not (work / "epoch_2.pth").exists()
    log = run_tool(tool, config, "--work-dir", str(work), "--resume")
    assert "resumed epoch: 1, iter: 1" in log and "Epoch(val) [2]" in log
    resumed = final_state(work)
    assert_states_equal(resumed, whole)
    # The run was not trivially equal: the second epoch moved the weights.
    first = load_run_checkpoint(work / "epoch_1.pth")["state_dict"]
    assert any(not torch.equal(first[key], whole[0][key]) for key in first
               if first[key].is_floating_point())

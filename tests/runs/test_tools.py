"""tools/train.py and tools/test.py as users run them: subprocesses on a shipped config."""
import os
import pickle
import subprocess
import sys

import pytest
import torch

import cp_plugin.mmaction  # noqa: F401  (registers our modules)
from cp_plugin.testing import perturbed, assert_same_in_float64
from mmengine.config import Config
from mmengine.registry import init_default_scope

from shrink import shrink_config
from toy_runs import load_run_checkpoint

pytestmark = pytest.mark.slow  # see setup.cfg: left out by make test-quick

REPO = os.path.join(os.path.dirname(__file__), "..", "..")
CPNET_SSV2 = os.path.join(REPO, "mmaction_configs", "sthv2", "cpnet_r18_12x2_sthv2_phase1.py")


def run_tool(*args):
    env = {k: v for k, v in os.environ.items() if k != "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"}
    result = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


@pytest.fixture
def small_config(tmp_path, video_data, rawframe_data, imagenet_checkpoint):
    cfg = shrink_config(Config.fromfile(CPNET_SSV2), tmp_path / "work", video_data,
                        rawframe_data, imagenet_checkpoint)
    path = tmp_path / "config.py"
    cfg.dump(str(path))
    return path


def test_train_stop_and_resume(small_config, tmp_path):
    work = tmp_path / "work"
    run_tool("tools/train.py", str(small_config), "--work-dir", str(work))
    assert load_run_checkpoint(work / "epoch_1.pth")["meta"]["iter"] == 1
    log = run_tool("tools/train.py", str(small_config), "--work-dir", str(work), "--resume",
                   "--cfg-options", "train_cfg.max_epochs=3")
    assert "resumed epoch: 1, iter: 1" in log
    final = load_run_checkpoint(work / "epoch_3.pth")
    assert final["meta"]["epoch"] == 3 and final["meta"]["iter"] == 3
    assert all(torch.isfinite(v).all() for v in final["state_dict"].values()
               if v.is_floating_point())


def test_multi_view_scores_average_each_videos_views(small_config, tmp_path):
    """16 clips x 6 crops per video, two videos per batch: each score is its own views' mean.

    tools/test.py's scores are what the model computes on the tool's batch (the same float32
    kernels on the same shapes in this process: equal bit for bit). That batched path, run in
    float64, equals every view run alone and averaged, to 1e-9 of the largest score: a view of
    one video averaged into the other's score moves it by orders of magnitude more."""
    from mmaction.registry import DATASETS, MODELS
    from mmengine.dataset import pseudo_collate

    init_default_scope("mmaction")
    cfg = Config.fromfile(str(small_config))
    (tmp_path / "two.txt").write_text("clip_0.mp4 0\nclip_2.mp4 2\n")
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    with torch.no_grad():  # CP modules that do something, so mixed-up clips would show
        for name, param in model.named_parameters():
            if "out_norm.weight" in name:
                param.uniform_(0.5, 1.5)
    checkpoint = tmp_path / "model.pth"
    torch.save({"state_dict": model.state_dict()}, checkpoint)

    dump = tmp_path / "scores.pkl"
    run_tool("tools/test.py", str(small_config), str(checkpoint), "--dump", str(dump),
             "--work-dir", str(tmp_path / "test"), "--cfg-options",
             f"test_dataloader.dataset.ann_file={tmp_path / 'two.txt'}",
             "test_dataloader.batch_size=2")
    with open(dump, "rb") as f:
        results = pickle.load(f)
    assert len(results) == 2

    dataset = DATASETS.build(dict(cfg.test_dataloader.dataset, ann_file=str(tmp_path / "two.txt")))
    samples = [dataset[0], dataset[1]]
    assert all(sample["inputs"].shape[0] == 2 * 6 for sample in samples)  # (views, C, T, H, W)
    model.eval()

    def batched_scores(inputs):
        with torch.no_grad():
            outputs = model.test_step(pseudo_collate(
                [dict(sample, inputs=views) for sample, views in zip(samples, inputs)]))
        return torch.stack([output.pred_score for output in outputs])

    views = [sample["inputs"] for sample in samples]
    tool = torch.stack([result["pred_score"] for result in results])
    torch.testing.assert_close(perturbed(tool), batched_scores(views), rtol=0, atol=0)

    model.double()
    batched = batched_scores(views)
    assert batched.dtype == torch.float64
    expected = []
    for sample in samples:
        probabilities = []
        for view in sample["inputs"]:  # one view at a time: nothing else in the batch
            data = model.data_preprocessor(
                dict(inputs=[view[None]], data_samples=[sample["data_samples"]]), False)
            with torch.no_grad():
                logits = model.cls_head(model(data["inputs"], data["data_samples"], mode="tensor"))
            probabilities.append(logits.softmax(-1))
        expected.append(torch.cat(probabilities).mean(0))
    expected = torch.stack(expected)
    assert_same_in_float64(batched, expected)

    # What the comparison sees: one view of each video swapped with the other's.
    swapped = [v.clone() for v in views]
    swapped[0][3], swapped[1][3] = views[1][3], views[0][3]
    with pytest.raises(AssertionError):
        assert_same_in_float64(batched_scores(swapped), expected)

"""cp_plugin.mmaction.zoo and tools/zoo_benchmark.py: zoo configs and their CP twins measured,
metafiles read, FLOPs checked."""
import csv
import os

import pytest
import torch
from mmengine.config import Config

from cp_plugin import CPModule
from cp_plugin.analysis.cost import cp_module_cost
from cp_plugin.mmaction import zoo
from shrink import shrink_config
from tools import zoo_benchmark as tool

Z = "mmaction::recognition/"
TSN = Z + "tsn/tsn_imagenet-pretrained-r50_8xb32-1x1x3-100e_kinetics400-rgb.py"
TSM = Z + "tsm/tsm_imagenet-pretrained-r50_8xb16-1x1x8-50e_kinetics400-rgb.py"
I3D = Z + "i3d/i3d_imagenet-pretrained-r50_8xb8-32x2x1-100e_kinetics400-rgb.py"
C2D = Z + "c2d/c2d_r50-in1k-pre-nopool_8xb32-8x8x1-100e_kinetics400-rgb.py"
SLOWONLY = Z + "slowonly/slowonly_r50_8xb16-8x8x1-256e_kinetics400-rgb.py"
X3D = Z + "x3d/x3d_s_13x6x1_facebook-kinetics400-rgb.py"
REPO = os.path.join(os.path.dirname(__file__), "..", "..")


def test_metafile_figures_are_read_as_published():
    # Values as c2d/metafile.yml states them ("33G", "24.3M"), and X3D's plain numbers.
    assert zoo.published(C2D) == dict(top1=73.44, top5=91.0, source="metafile (Kinetics-400)",
                                       gflops=33.0, params_m=24.3)
    x3d = zoo.published(X3D)
    assert x3d["top1"] == 73.3 and x3d["top5"] is None
    assert x3d["gflops"] == pytest.approx(2.9675, abs=1e-3)
    assert x3d["params_m"] == pytest.approx(3.7943, abs=1e-3)
    ours = zoo.published(os.path.join(REPO, "mmaction_configs", "kinetics400",
                                       "cpnet_r101_32x2_kinetics400_phase3.py"))
    assert (ours["top1"], ours["top5"], ours["source"]) == (75.3, 92.4, "paper Table 4")
    with pytest.raises(FileNotFoundError, match="no config"):
        zoo.load_config("no/such/config.py")


def test_gmacs_match_the_metafile_at_the_test_view():
    """FlopCounterMode's multiply-adds of TSM-R50's test view (8 x 224 px) against the
    metafile's 32.88G, which mmengine's counter gave (also MACs, plus a little BN and pooling)."""
    cfg = zoo.load_config(TSM)
    frames, side = zoo.view_shape(cfg.test_dataloader.dataset.pipeline)
    assert (frames, side) == (8, 224)
    ours = zoo.macs(zoo.build(cfg), zoo.inputs(cfg, frames, side)) / 1e9
    assert ours == pytest.approx(zoo.published(TSM)["gflops"], rel=0.02)


@pytest.mark.parametrize("placement", ["resnet50", "neck"])
def test_cp_twin_costs_its_cp_modules_more(placement, monkeypatch):
    """The twin's extra GMACs are its CP modules', counted step by step by cp_module_cost."""
    cfg = zoo.load_config(C2D)
    stock, twin = zoo.build(cfg), zoo.build(zoo.with_cp(cfg, placement))
    x = zoo.inputs(cfg, 8, 96)
    shapes = {}
    compute_delta = CPModule.compute_delta

    def record(module, video):  # every CP forward, in a block or a neck, passes through here
        shapes.setdefault(module, video.shape)
        return compute_delta(module, video)

    monkeypatch.setattr(CPModule, "compute_delta", record)
    extra = zoo.macs(twin, x) - zoo.macs(stock, x)
    assert all(len(shape) == 5 for shape in shapes.values())  # (N, C, T, H, W) maps
    expected = sum(cp_module_cost(m, shape)["macs"] for m, shape in shapes.items())
    assert len(shapes) == (5 if placement == "resnet50" else 1)
    assert extra == expected


@pytest.mark.slow
def test_runs_on_zoo_models_and_their_twins_at_a_reduced_input(tmp_path):
    models = [TSN, TSM, I3D, C2D, SLOWONLY]
    rows = tool.main([*models, "--with-cp", "resnet50", "--frames", "16", "--size", "64",
                      "--repeats", "1", "--train-batch", "1", "--out-dir", str(tmp_path)])
    assert [row["model"] for row in rows[::2]] == models
    for stock, twin in zip(rows[::2], rows[1::2]):
        assert twin["model"] == stock["model"] + " + CP (resnet50)"
        assert "note" not in twin, twin["note"]
        assert twin["params_m"] > stock["params_m"] and twin["gmacs"] > stock["gmacs"]
        for row in (stock, twin):
            assert row["clips_per_s"] > 0 and row["train_step_s"] > 0 and row["peak_mib"] > 0
        published = zoo.published(stock["model"])
        assert stock["published_top1"] == published["top1"] is not None
        assert stock["metafile_gflops"] == published["gflops"]
        assert twin["published_top1"] is None  # no accuracy is claimed for an untrained twin
    with open(tmp_path / "zoo.csv") as f:
        assert len(list(csv.DictReader(f))) == 10
    table = (tmp_path / "zoo.md").read_text()
    assert "tsm_imagenet-pretrained-r50_8xb16-1x1x8-50e_kinetics400-rgb + CP (resnet50)" in table
    assert (tmp_path / "zoo.png").stat().st_size > 10_000


def test_tsn_twin_trains_on_3_segments_and_tests_on_25(tmp_path):
    """Stock TSN's own views (no --frames): the twin's CPBackbone gets both segment counts, and
    inference after a training step runs in eval mode on the 25-segment test view."""
    rows = tool.main([TSN, "--with-cp", "resnet50", "--size", "32", "--repeats", "1",
                      "--train-batch", "1", "--out-dir", str(tmp_path)])
    assert "note" not in rows[1], rows[1]["note"]
    assert rows[1]["input"] == "25x32x32" and rows[1]["clips_per_s"] > 0


def test_refused_twin_is_a_row_that_says_why(tmp_path):
    rows = tool.main([X3D, "--with-cp", "resnet50", "--frames", "4", "--size", "32",
                      "--repeats", "1", "--train-batch", "1", "--out-dir", str(tmp_path)])
    assert "gmacs" in rows[0] and "gmacs" not in rows[1]
    assert "layer2.2" in rows[1]["note"]  # the preset's block names, which X3D does not have
    with pytest.raises(SystemExit):
        tool.main([X3D, "--with-cp", "resnet51"])


def biased_checkpoint(model, label, path):
    """A zoo-format checkpoint of ``model`` whose head scores class ``label`` far above the rest."""
    state = {key: value.clone() for key, value in model.state_dict().items()}
    state["cls_head.fc_cls.bias"] = torch.zeros_like(state["cls_head.fc_cls.bias"])
    state["cls_head.fc_cls.bias"][label] = 100.0
    torch.save({"meta": {}, "state_dict": state}, path)
    return str(path)


@pytest.mark.slow
def test_eval_measures_accuracy_on_the_users_videos(tmp_path, video_data, rawframe_data,
                                                    imagenet_checkpoint):
    """--eval runs mmaction2's test loop on real decoded videos: a checkpoint biased to the test
    video's label (2) scores 100%, one biased to another label 0% top-1."""
    cfg = shrink_config(Config.fromfile(zoo.zoo_file(C2D)), tmp_path / "work", video_data,
                        rawframe_data, imagenet_checkpoint)
    sampler = next(s for s in cfg.test_dataloader.dataset.pipeline if s.type == "SampleFrames")
    sampler.num_clips = 1  # one view: quick
    config = tmp_path / "c2d_small.py"
    cfg.dump(str(config))
    model = zoo.build(Config.fromfile(str(config)))
    rows = []
    for label in (2, 7):
        rows += tool.main([str(config), "--frames", "8", "--size", "64", "--repeats", "1",
                           "--train-batch", "1", "--out-dir", str(tmp_path / f"out{label}"),
                           "--eval", "--ann-file", str(video_data / "test.txt"),
                           "--data-prefix", str(video_data), "--checkpoints",
                           biased_checkpoint(model, label, tmp_path / f"biased{label}.pth")])
    assert (rows[0]["eval_top1"], rows[0]["eval_top5"]) == (100.0, 100.0)
    assert rows[1]["eval_top1"] == 0.0

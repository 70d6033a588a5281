"""`make motion` end to end at a tiny size: clip sets from a real video, the appearance stage and
its checkpoint, every row's config loading it (``load_from``; ``pretrained2d`` for TSM) through
mmengine's Runner, CP modules that start as the identity, and the report."""
import json
import os

import pytest
import torch

from cp_plugin.motion.experiment import (ROWS, Settings, checkpoint_paths, load_config,
                                         point_at_appearance_stage)
from mmengine.registry import RUNNERS

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("mmaction_scope")]

SHARED_CLIP = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data",
                           "real_clip_pool_cleaning.mp4")
TINY = Settings(train_clips=8, val_clips=8, epochs=2, appearance_frames=16, appearance_epochs=1)


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """tools/motion.py at a tiny size, on the shared real clip when it is there."""
    from tools import motion

    work_dir = str(tmp_path_factory.mktemp("motion"))
    argv = ["--work-dir", work_dir, "--train-clips", "8", "--val-clips", "8", "--epochs", "2",
            "--appearance-frames", "16", "--appearance-epochs", "1"]
    footage = SHARED_CLIP if os.path.exists(SHARED_CLIP) else None
    if footage:
        argv += ["--footage", footage]
    return work_dir, TINY._replace(footage=footage), motion.main(argv)


def loaded_runner(name, work_dir, settings):
    """The runner of a row as ``train()`` prepares it: weights initialised, then loaded."""
    row = ROWS[name]
    cfg = load_config(row.config, os.path.join(work_dir, "check", name.replace(" ", "_")),
                      settings, appearance=False)
    point_at_appearance_stage(cfg, checkpoint_paths(work_dir), row.pretrained)
    runner = RUNNERS.build(cfg)
    runner.model.init_weights()
    runner.load_or_resume()
    return runner


def test_report_has_every_row_per_epoch(experiment):
    work_dir, _, results = experiment
    assert list(results["rows"]) == list(ROWS)
    for row in results["rows"].values():
        assert len(row["epoch_val_acc"]) == 2 and len(row["epoch_loss"]) == 2
        assert all(0.0 <= a <= 1.0 for a in row["epoch_val_acc"])
    saved = json.load(open(os.path.join(work_dir, "results.json")))
    assert saved["rows"].keys() == results["rows"].keys()
    table = open(os.path.join(work_dir, "results.md")).read()
    assert all(f"| {name} |" in table for name in ROWS) and "| ep 2 |" in table
    assert os.path.getsize(os.path.join(work_dir, "curves.png")) > 10_000
    assert os.path.exists(os.path.join(work_dir, "CPNet-R18", "console.log"))


def test_appearance_checkpoint_is_an_ordinary_one(experiment):
    work_dir, _, _ = experiment
    paths = checkpoint_paths(work_dir)
    checkpoint = torch.load(paths["checkpoint"], map_location="cpu", weights_only=False)
    assert {"meta", "state_dict"} <= set(checkpoint)
    assert checkpoint["state_dict"]["cls_head.fc_cls.weight"].shape == (8, 512)  # 8 objects
    backbone = torch.load(paths["backbone"], map_location="cpu", weights_only=True)
    assert set(backbone) == {k[len("backbone."):] for k in checkpoint["state_dict"]
                             if k.startswith("backbone.")}


@pytest.mark.parametrize("name", ["CPNet-R18", "C2D-R18", "NL-C2D-R18"])
def test_load_from_puts_every_backbone_weight_in_the_model(experiment, name):
    work_dir, settings, _ = experiment
    checkpoint = torch.load(checkpoint_paths(work_dir)["checkpoint"], map_location="cpu",
                            weights_only=False)["state_dict"]
    model = loaded_runner(name, work_dir, settings).model.state_dict()
    for key, value in checkpoint.items():
        if key.startswith("backbone."):
            assert torch.equal(model[key], value), key
    new = {key for key in model if key not in checkpoint}
    # Inserted modules sit in the site that replaces a block's final activation.
    inserted = {"CPNet-R18": ".relu.module.", "NL-C2D-R18": ".relu.module.", "C2D-R18": None}[name]
    assert all(inserted and inserted in key for key in new), sorted(new)[:5]
    assert bool(new) == (inserted is not None)


def test_tsm_loads_the_backbone_through_its_2d_loader(experiment):
    work_dir, settings, _ = experiment
    backbone = torch.load(checkpoint_paths(work_dir)["backbone"], weights_only=True)
    model = loaded_runner("TSM-R18", work_dir, settings).model.backbone.state_dict()
    for key, value in backbone.items():
        shifted = key.replace("conv1.conv.", "conv1.conv.net.")  # TSM wraps each first conv
        assert torch.equal(model[shifted if shifted in model else key], value), key


def test_cp_modules_start_as_identity_and_scratch_loads_nothing(experiment):
    work_dir, settings, _ = experiment
    cpnet = loaded_runner("CPNet-R18", work_dir, settings).model.eval()
    c2d = loaded_runner("C2D-R18", work_dir, settings).model.eval()
    frames = torch.randn(2 * 4, 3, 64, 64)  # 2 clips of 4 frames, as Recognizer2D hands them
    with torch.no_grad():
        assert torch.equal(cpnet.backbone(frames), c2d.backbone(frames))
    scratch = loaded_runner("CPNet-R18 (scratch)", work_dir, settings).model.state_dict()
    conv = "backbone.conv1.conv.weight"
    assert not torch.equal(scratch[conv], cpnet.state_dict()[conv])


def test_probe_trains_cp_on_frozen_features_of_the_checkpoint(experiment, capsys):
    from tools import motion

    work_dir, settings, _ = experiment
    argv = ["--work-dir", work_dir, "--probe", "train_clips=8", "val_clips=8", "steps=4",
            "batch_size=4", "--probe", "train_clips=8", "val_clips=8", "steps=4", "batch_size=4",
            "pretrained=false", "k=2"]
    if settings.footage:
        argv += ["--footage", settings.footage]
    results = motion.main(argv)
    assert [r["settings"] for r in results][1].endswith("k=2, pretrained=False")
    assert all(r["step"] == [4] and 0.0 <= r["val_acc"][0] <= 1.0 for r in results)
    assert "| probe |" in capsys.readouterr().out
    assert os.path.exists(os.path.join(work_dir, "probe.json"))
    with pytest.raises(SystemExit, match="NAME one of stage, train_clips"):
        motion.main(["--work-dir", work_dir, "--probe", "k"])

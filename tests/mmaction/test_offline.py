"""Offline use as docs/mmaction.md shows it: every README example, and a TSM twin, built and
initialised with the documented edit and no download; local ImageNet weights loaded instead."""
import os

import pytest
import torch
from mmengine.config import Config

import cp_plugin.mmaction  # noqa: F401  (registers our modules)
from readme import write_readme_config

DOCS = open(os.path.join(os.path.dirname(__file__), "..", "..", "docs", "mmaction.md")).read()
OFFLINE = "model = dict(backbone=dict(backbone=dict(pretrained=None)))"
LOCAL = "model = dict(backbone=dict(backbone=dict(pretrained='resnet50.pth')))"
TSM_OFFLINE = "model = dict(backbone=dict(backbone=dict(pretrained=None, pretrained2d=False)))"
TSM_TWIN = """_base_ = ['mmaction::recognition/tsm/tsm_imagenet-pretrained-r50_8xb16-1x1x8-50e_kinetics400-rgb.py']
custom_imports = dict(imports=['cp_plugin.mmaction'], allow_failed_imports=False)
model = dict(backbone=dict(_delete_=True, type='CPBackbone', backbone={{_base_.model.backbone}},
                           cp_blocks='resnet50', cp_cfg=dict(k=4)))
"""


def test_the_edits_are_the_documented_ones():
    assert OFFLINE in DOCS and LOCAL in DOCS and TSM_OFFLINE in DOCS


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch):
    def refuse(url, *args, **kwargs):
        raise ConnectionRefusedError(f"download attempted: {url}")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


def built(tmp_path, base: str, edit: str, name: str = "edited.py"):
    """The model of a config that inherits ``base`` and adds ``edit``, its weights initialised."""
    from mmaction.registry import MODELS
    from mmengine.registry import init_default_scope

    path = tmp_path / name
    path.write_text(f"_base_ = [{base!r}]\n{edit}\n")
    init_default_scope("mmaction")
    model = MODELS.build(Config.fromfile(str(path)).model)
    model.init_weights()
    return model


def test_readme_cpbackbone_example_offline_and_with_local_weights(tmp_path, imagenet_checkpoint):
    readme = write_readme_config(r"# my_cpnet_c2d_r50\.py\n", tmp_path / "my_cpnet_c2d_r50.py")
    with pytest.raises(ConnectionRefusedError, match="download attempted"):
        built(tmp_path, readme, "")  # as shipped, the zoo config downloads
    built(tmp_path, readme, OFFLINE)

    local = imagenet_checkpoint(50)
    model = built(tmp_path, readme, LOCAL.replace("'resnet50.pth'", repr(local)))
    stem = model.backbone.backbone.conv1.conv.weight
    assert torch.equal(stem, torch.load(local)["conv1.weight"])


def test_tsm_twin_offline(tmp_path):
    twin = tmp_path / "tsm_cpnet.py"
    twin.write_text(TSM_TWIN)
    with pytest.raises(TypeError, match="expected string or bytes-like object"):
        built(tmp_path, str(twin), OFFLINE)  # the failure docs/mmaction.md explains
    model = built(tmp_path, str(twin), TSM_OFFLINE)
    assert len([m for m in model.modules() if type(m).__name__ == "CPModule"]) == 5


def test_readme_neck_example_needs_no_edit(tmp_path):
    readme = write_readme_config(r"_base_ = \['mmaction::recognition/x3d/", tmp_path / "x3d.py")
    model = built(tmp_path, readme, "")
    assert type(model.neck).__name__ == "CPNeck"

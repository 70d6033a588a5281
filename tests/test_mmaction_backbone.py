"""CPBackbone / VideoBackbone under mmaction2's own machinery."""
import copy
import logging

import pytest
import torch
from torch import nn

import cp_plugin
from cp_plugin import CPModule
from cp_plugin.insertion import ActivationSite, insertion_sites
from mmaction.registry import MODELS
from mmengine.registry import init_default_scope
from mmengine.runner.checkpoint import load_checkpoint

init_default_scope("mmaction")

INNER = {
    "C2D": dict(type="C2D", depth=18, pretrained=None),
    "ResNet": dict(type="ResNet", depth=18, pretrained=None),
    "ResNetTSM": dict(type="ResNetTSM", depth=18, pretrained=None, pretrained2d=False,
                      num_segments=8),
    "ResNet3d": dict(type="ResNet3d", depth=18, pretrained=None, pretrained2d=False),
}


def build_pair(inner, pretrained=None, **kwargs):
    """A CPBackbone around ``inner`` and the plain ``inner``, both init_weights()-ed, same weights."""
    inner = dict(inner)
    if pretrained:  # ResNetTSM reads torchvision files through its pretrained2d path
        loader = "pretrained2d" if inner["type"] == "ResNetTSM" else "torchvision_pretrain"
        inner.update({"pretrained": pretrained, loader: True})
    wrapped = MODELS.build(dict(type="CPBackbone", backbone=inner, cp_blocks="resnet18",
                                num_segments=8, **kwargs))
    wrapped.init_weights()
    plain = MODELS.build(inner)
    plain.init_weights()
    return wrapped, plain


def frames(clips=2, size=64, seed=0):
    return torch.randn(clips * 8, 3, size, size, generator=torch.Generator().manual_seed(seed))


def clips(n=2, size=64, seed=0):
    return torch.randn(n, 3, 8, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name,x", [("C2D", clips()), ("ResNet", frames()),
                                    ("ResNetTSM", frames()), ("ResNet3d", clips())])
@pytest.mark.parametrize("pretrained", [False, True])
def test_identity_after_init_weights(name, x, pretrained, imagenet_checkpoint):
    if pretrained and name == "ResNet3d":
        pytest.skip("ResNet3d inflates 2D weights through its own pretrained2d path")
    wrapped, plain = build_pair(INNER[name], imagenet_checkpoint(18) if pretrained else None)
    cps = [site.module for site in insertion_sites(wrapped)]
    assert len(cps) == 4 and all(isinstance(cp, CPModule) for cp in cps)
    for cp in cps:  # the backbone's init (BN weight 1, checkpoint loading) left CP at identity
        assert not cp.out_norm.weight.any() and not cp.out_norm.bias.any()
    if pretrained:  # both loaded the same file
        torch.testing.assert_close(wrapped.backbone.conv1.conv.weight, plain.conv1.conv.weight,
                                   rtol=0, atol=0)
    else:
        plain.load_state_dict(wrapped.state_dict(), strict=False)
    wrapped.eval()
    plain.eval()
    assert torch.equal(wrapped(x), plain(x))


def test_recognizer2d_with_num_segments_matches_plain_tsn():
    def recognizer(backbone):
        return MODELS.build(dict(
            type="Recognizer2D", backbone=backbone,
            cls_head=dict(type="TSNHead", num_classes=5, in_channels=512),
            data_preprocessor=dict(type="ActionDataPreprocessor", format_shape="NCHW")))

    torch.manual_seed(0)
    cp_model = recognizer(dict(type="CPBackbone", backbone=INNER["ResNet"], cp_blocks="resnet18",
                               num_segments=8))
    plain_model = recognizer(INNER["ResNet"])
    cp_model.init_weights()
    plain_model.load_state_dict(cp_model.state_dict(), strict=False)
    cp_model.eval()
    plain_model.eval()
    x = frames(clips=2, size=32).view(2, 8, 3, 32, 32)
    assert torch.equal(cp_model(x, mode="tensor"), plain_model(x, mode="tensor"))


def test_plain_checkpoints_load_with_only_inserted_keys_missing(tmp_path):
    wrapped, plain = build_pair(INNER["C2D"])
    path = tmp_path / "plain.pth"
    torch.save({"state_dict": plain.state_dict()}, path)
    logger = logging.getLogger("cp_plugin.test_checkpoint")
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    load_checkpoint(wrapped, str(path), strict=False, logger=logger)
    missing = [r.getMessage() for r in records]
    torch.testing.assert_close(wrapped.backbone.layer4[1].conv2.conv.weight,
                               plain.layer4[1].conv2.conv.weight, rtol=0, atol=0)
    report = "\n".join(missing)
    assert "missing keys in source state_dict" in report
    listed = report.split("missing keys in source state_dict:")[1].split("\n")[0]
    keys = [k.strip() for k in listed.split(",") if k.strip()]
    assert keys and all(".relu.module." in k for k in keys)
    assert "unexpected key" not in report
    # And the other way round: a CPNet checkpoint's keys are the plain ones plus CP's.
    result = plain.load_state_dict(wrapped.state_dict(), strict=False)
    assert not result.missing_keys
    assert result.unexpected_keys and all(".relu.module." in k for k in result.unexpected_keys)


def test_freezing_options_never_freeze_cp():
    inner = dict(INNER["ResNet"], partial_bn=True, norm_eval=True, frozen_stages=4)
    wrapped = MODELS.build(dict(type="CPBackbone", backbone=inner, cp_blocks="resnet18",
                                num_segments=8))
    wrapped.init_weights()
    wrapped.train()
    assert not wrapped.backbone.layer3[0].conv1.conv.weight.requires_grad  # frozen stage
    assert not wrapped.backbone.layer3[0].conv1.bn.training  # norm_eval / partial_bn
    for site in insertion_sites(wrapped):
        assert site.module.training
        assert all(m.training for m in site.module.modules())
        assert all(p.requires_grad for p in site.module.parameters())
    frozen_norms = MODELS.build(dict(type="CPBackbone", backbone=INNER["ResNet"],
                                     cp_blocks="resnet18", num_segments=8,
                                     inserted_norm_eval=True)).train()
    for site in insertion_sites(frozen_norms):
        norms = [m for m in site.module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        assert norms and not any(m.training for m in norms)
        assert all(p.requires_grad for p in site.module.parameters())


def test_deepcopy_gives_independent_modules():
    wrapped, _ = build_pair(INNER["ResNet"])
    twin = copy.deepcopy(wrapped)
    original = [site.module for site in insertion_sites(wrapped)]
    copied = [site.module for site in insertion_sites(twin)]
    assert all(a is not b for a, b in zip(original, copied))
    with torch.no_grad():
        for cp in copied:
            cp.out_norm.weight.fill_(1.0)
    wrapped.eval()
    twin.eval()
    x = frames(clips=1, size=32)
    assert not wrapped.backbone.layer3[1].relu.module.out_norm.weight.any()
    assert not torch.equal(twin(x), wrapped(x))


def test_c2d_modules_see_the_pooled_clip_length():
    wrapped, _ = build_pair(INNER["C2D"])
    seen = {}

    def record(name):
        def hook(module, args, output):
            seen[name] = args[0].shape
        return hook

    for name, module in wrapped.named_modules():
        if isinstance(module, CPModule):
            module.register_forward_hook(record(name))
    wrapped(clips(n=3, size=64))
    # C2D halves T after res2: every CP module gets 3 clips of 4 frames.
    assert len(seen) == 4 and all(shape[0] == 3 and shape[2] == 4 for shape in seen.values())


def test_multi_view_batches_are_split_into_clips():
    """Views stacked in one batch give what each view gives alone: no CP module mixes them."""
    wrapped, _ = build_pair(INNER["ResNet"])
    with torch.no_grad():
        for site in insertion_sites(wrapped):
            site.module.out_norm.weight.fill_(1.0)
    wrapped.eval()
    views = [frames(clips=1, size=32, seed=s) for s in range(3)]
    together = wrapped(torch.cat(views))
    alone = torch.cat([wrapped(v) for v in views])
    torch.testing.assert_close(together, alone)
    # Mixing views would change the answer: the same frames regrouped differently do.
    assert not torch.allclose(wrapped(torch.cat(views).roll(4, 0)).roll(-4, 0), together)


def test_nonlocal_baseline_uses_mmcv_nonlocal3d_after_blocks(imagenet_checkpoint):
    from mmcv.cnn import NonLocal3d

    insertion = dict(blocks="resnet18", position="after_block",
                     module=dict(type="NonLocal3d", sub_sample=True, use_scale=True,
                                 norm_cfg=dict(type="BN3d")))
    inner = dict(INNER["ResNet"], pretrained=imagenet_checkpoint(18), torchvision_pretrain=True)
    wrapped = MODELS.build(dict(type="VideoBackbone", backbone=inner, insertions=[insertion]))
    wrapped.init_weights()  # loads the torchvision file; NL's ConvModules are out of its way
    sites = {n: m for n, m in wrapped.named_modules() if isinstance(m, ActivationSite)}
    assert set(sites) == {"backbone.layer2.1.relu", "backbone.layer3.1.relu"}
    assert all(isinstance(s.module, NonLocal3d) and s.position == "after_block"
               for s in sites.values())
    plain = MODELS.build(inner)
    plain.init_weights()
    wrapped.eval()
    plain.eval()
    x = clips(n=1, size=64)
    expected = plain(x.transpose(1, 2).flatten(0, 1)).unflatten(0, (1, 8)).transpose(1, 2)
    assert torch.equal(wrapped(x), expected)


def test_registry_names():
    assert MODELS.get("CPModule") is CPModule
    assert MODELS.get("CPBackbone") is cp_plugin.mmaction_plugin.CPBackbone
    from mmcv.cnn import NonLocal3d
    assert MODELS.get("NonLocal3d") is NonLocal3d


@pytest.mark.parametrize("kwargs,match", [
    (dict(cp_blocks=["layer9.0"]), r"no block named 'layer9.0'; valid block names: layer1.0, "),
    (dict(cp_blocks=["layer2"]), r"'layer2' is a Sequential, not a supported residual block"),
    (dict(cp_blocks="resnet1000"), r"unknown insertions\[0\].blocks preset 'resnet1000'"),
    (dict(cp_blocks=[3]), r"each block entry must be a name"),
])
def test_bad_block_selection(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        MODELS.build(dict(type="CPBackbone", backbone=INNER["ResNet"], **kwargs))


def test_backbone_without_supported_blocks():
    with pytest.raises(ValueError, match="MobileNetV2 has no residual block of a supported class"):
        MODELS.build(dict(type="CPBackbone", backbone=dict(type="MobileNetV2"),
                          cp_blocks=["layer1.0"]))


def test_frames_without_num_segments():
    wrapped = MODELS.build(dict(type="CPBackbone", backbone=INNER["ResNet"]))
    with pytest.raises(ValueError, match="no num_segments"):
        wrapped(frames())


def test_readme_config_example(tmp_path):
    """The README's 'Add CP modules to your mmaction2 config' snippet builds and runs."""
    import os
    import re

    from mmengine.config import Config

    readme = open(os.path.join(os.path.dirname(__file__), "..", "README.md")).read()
    snippet = re.search(r"```python\n(# my_cpnet_c2d_r50\.py\n.*?)```", readme, re.S).group(1)
    path = tmp_path / "my_cpnet_c2d_r50.py"
    path.write_text(snippet)
    cfg = Config.fromfile(str(path))
    model = MODELS.build(cfg.model)
    model.init_weights()
    sites = list(insertion_sites(model))
    assert len(sites) == 5 and all(s.module.k == 4 for s in sites)
    features = model.extract_feat(clips(n=1, size=64)[None])[0]  # (N, views, C, T, H, W)
    assert features.shape == (1, 2048, 4, 2, 2)

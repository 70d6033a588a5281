"""CPBackbone / VideoBackbone under mmaction2's own machinery."""
import copy
import logging
import os

import pytest
import torch
from torch import nn

import cp_plugin.mmaction
from cp_plugin import CPModule
from cp_plugin.insertion import ActivationSite, insertion_sites
from cp_plugin.testing import (assert_differ_in_float64, assert_same_in_float64,
                               assert_step_matches, network_reduction_length)
from mmaction.registry import MODELS
from mmengine.runner.checkpoint import load_checkpoint

pytestmark = pytest.mark.usefixtures("mmaction_scope")

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
    wrapped.double()
    views = [frames(clips=1, size=32, seed=s).double() for s in range(3)]
    together = wrapped(torch.cat(views))
    alone = torch.cat([wrapped(v) for v in views])
    assert_same_in_float64(together, alone)  # other batch sizes, other kernels
    # Mixing views would change the answer: the same frames regrouped differently do.
    assert_differ_in_float64(wrapped(torch.cat(views).roll(4, 0)).roll(-4, 0), together)


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
    assert MODELS.get("CPBackbone") is cp_plugin.mmaction.CPBackbone
    from mmcv.cnn import NonLocal3d
    assert MODELS.get("NonLocal3d") is NonLocal3d


@pytest.mark.parametrize("kwargs,match", [
    (dict(cp_blocks=["layer9.0"]), r"no block named 'layer9.0'; valid block names: layer1.0, "),
    (dict(cp_blocks=["layer2"]), r"'layer2' \(torch\.nn\..*Sequential\) cannot take a CPModule: "
                                 r"Sequential is not a registered residual-block class"),
    (dict(cp_blocks="resnet152"), r"^CPBackbone\.cp_blocks: unknown preset 'resnet152' \(did you "
                                  r"mean 'resnet50'\?\); valid presets: resnet18, resnet18-6cp, "),
    (dict(cp_blocks=[3]), r"each block entry must be a name"),
])
def test_bad_block_selection(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        MODELS.build(dict(type="CPBackbone", backbone=INNER["ResNet"], **kwargs))


NON_LOCAL = dict(blocks="resnet18", module=dict(type="NonLocal3d"))


@pytest.mark.parametrize("cfg,match", [
    (dict(type="CPBackbone", cp_cfg=dict(kk=4)),
     r"^CPBackbone\.cp_cfg: unknown option 'kk' \(did you mean 'k'\?\); valid options: k, "
     r"mlp_channels, bottleneck_channels, shrink, num_frames, knn_chunk_size, checkpoint_pairs, "),
    (dict(type="CPBackbone", cp_block="resnet50"),
     r"^CPBackbone: unknown option 'cp_block' \(did you mean 'cp_blocks'\?\); valid options: "
     r"backbone, cp_blocks, cp_cfg, insertions, num_segments, "),
    (dict(type="VideoBackbone", num_segment=3),
     r"^VideoBackbone: unknown option 'num_segment' \(did you mean 'num_segments'\?\)"),
    (dict(type="CPBackbone", insertions=[NON_LOCAL, dict(NON_LOCAL, blocks="resnet51")]),
     r"^CPBackbone\.insertions\[1\]\.blocks: unknown preset 'resnet51' \(did you mean"),
    (dict(type="VideoBackbone", insertions=[dict(blocks=["layer3.0"],
                                                 module=dict(type="CPModule", kk=4))]),
     r"^VideoBackbone\.insertions\[0\]\.module: unknown option 'kk' \(did you mean 'k'\?\)"),
    (dict(type="VideoBackbone", insertions=[dict(blocks=["layer3.0"], module=dict(type="CPModul"))]),
     r"VideoBackbone\.insertions\[0\]\.module\.type: unknown module type 'CPModul' \(did you "
     r"mean 'CPModule'\?\); valid module types: any name in mmaction2's MODELS registry"),
])
def test_unknown_options_are_named_by_their_config_keys(cfg, match):
    with pytest.raises((TypeError, ValueError, KeyError), match=match):
        MODELS.build(dict(cfg, backbone=INNER["ResNet"]))


def test_backbone_without_supported_blocks():
    with pytest.raises(ValueError, match=r"InvertedResidual\) cannot take a CPModule.*not a "
                                         r"registered residual-block class.*register_block"):
        MODELS.build(dict(type="CPBackbone", backbone=dict(type="MobileNetV2"),
                          cp_blocks=["layer1.0"]))
    with pytest.raises(ValueError, match="MobileNetV2 has no residual block of a supported class"):
        MODELS.build(dict(type="CPBackbone", backbone=dict(type="MobileNetV2"),
                          cp_blocks=["layer9.0"]))


def test_frames_without_num_segments():
    wrapped = MODELS.build(dict(type="CPBackbone", backbone=INNER["ResNet"]))
    with pytest.raises(ValueError, match="no num_segments"):
        wrapped(frames())


def test_readme_config_example(tmp_path):
    """The README's 'Add CP modules to your mmaction2 config' snippet builds and runs."""
    import re

    from mmengine.config import Config
    from readme import readme_snippet

    snippet = readme_snippet(r"# my_cpnet_c2d_r50\.py\n")
    path = tmp_path / "my_cpnet_c2d_r50.py"
    path.write_text(snippet)
    cfg = Config.fromfile(str(path))
    stock_path = tmp_path / "stock.py"
    stock_path.write_text(re.search(r"_base_ = \[.*?\]\n", snippet).group(0))
    stock = Config.fromfile(str(stock_path))
    assert cfg.model.backbone.backbone == stock.model.backbone  # pretrained weights included
    assert stock.model.backbone.pretrained  # (an ImageNet file: not fetched here, no hub)
    cfg.model.backbone.backbone.pretrained = None
    model = MODELS.build(cfg.model)
    model.init_weights()
    sites = list(insertion_sites(model))
    assert len(sites) == 5 and all(s.module.k == 4 for s in sites)
    features = model.extract_feat(clips(n=1, size=64)[None])[0]  # (N, views, C, T, H, W)
    assert features.shape == (1, 2048, 4, 2, 2)


def perturb_cp(model, seed=0):
    """Make every inserted CP module a non-identity (random output BN)."""
    gen = torch.Generator().manual_seed(seed)
    for site in insertion_sites(model):
        norm = site.module.out_norm
        with torch.no_grad():
            norm.weight.copy_(torch.randn(norm.weight.shape, generator=gen))
            norm.bias.copy_(0.1 * torch.randn(norm.bias.shape, generator=gen))
    return model


def test_cp_runs_after_the_residual_add_of_the_named_blocks():
    """CPBackbone(ResNet) on frames equals a forward assembled by hand: the plain blocks, with
    CP applied to each named block's residual sum (viewed as clips of 4 frames) before its ReLU."""
    from cp_plugin import frames_to_video, video_to_frames

    named = ["layer2.1", "layer3.0"]
    wrapped = MODELS.build(dict(type="CPBackbone", backbone=INNER["ResNet"], cp_blocks=named,
                                cp_cfg=dict(k=4), num_segments=4))
    wrapped.init_weights()
    perturb_cp(wrapped).eval()  # mmaction2's ResNet.train() returns None: no chaining
    wrapped.double()
    cps = {name: wrapped.backbone.get_submodule(name).relu.module for name in named}
    plain = MODELS.build(INNER["ResNet"])
    plain.load_state_dict(wrapped.state_dict(), strict=False)  # CP keys are extra
    plain.eval()
    plain.double()

    def by_hand(x):
        x = plain.maxpool(plain.conv1(x))
        for layer_name in plain.res_layers:
            for index, block in enumerate(getattr(plain, layer_name)):
                identity = x if block.downsample is None else block.downsample(x)
                out = block.conv2(block.conv1(x)) + identity
                cp = cps.get(f"{layer_name}.{index}")
                if cp is not None:
                    out = video_to_frames(cp(frames_to_video(out, 4)))
                x = block.relu(out)
        return x

    x = frames(clips=2, size=32)[:8].double()
    with torch.no_grad():
        ours, expected = wrapped(x), by_hand(x)
        assert_same_in_float64(ours, expected)
        # CP changed the features: not vacuous
        assert_differ_in_float64(ours, plain(x))


def test_t_reaching_one_names_the_block():
    """C2D halves T after res2: 2-frame clips leave layer2's CP modules one frame."""
    wrapped = MODELS.build(dict(type="CPBackbone", backbone=INNER["C2D"], cp_blocks=["layer2.0"]))
    with pytest.raises(ValueError, match=r"block 'layer2.0' got T=1 frame\(s\) from clips of 2 "
                                         r"frames.*Feed longer clips"):
        wrapped(clips(n=1, size=32)[:, :, :2])


def stock_with_cp(path, tmp_path, **cp):
    """A stock mmaction2 zoo config, its backbone wrapped in CPBackbone (no ImageNet download)."""
    from mmengine.config import Config

    config = tmp_path / "config.py"
    config.write_text(f"_base_ = ['mmaction::{path}']\n")
    cfg = Config.fromfile(str(config))
    inner = dict(cfg.model.backbone, pretrained=None)
    cfg.model.backbone = dict(type="CPBackbone", backbone=inner, cp_blocks=["layer3.1", "layer4.0"],
                              cp_cfg=dict(k=4), **cp)
    model = MODELS.build(cfg.model)  # PyTorch's default init: the weights do not matter here
    return perturb_cp(model).eval(), cfg


@pytest.mark.parametrize("path,cp,views,per_view", [
    # Stock TSN: 3 segments in training, 25 x TenCrop at test.
    ("recognition/tsn/tsn_imagenet-pretrained-r50_8xb32-1x1x3-100e_kinetics400-rgb.py",
     dict(num_segments=3, test_num_segments=25), 10, 25),
    # Stock TSM: 8 segments (ResNetTSM's own), twice_sample x ThreeCrop at test.
    ("recognition/tsm/tsm_imagenet-pretrained-r50_8xb16-1x1x8-50e_kinetics400-rgb.py",
     dict(), 6, 8),
], ids=["tsn", "tsm"])
def test_stock_recognizer2d_test_views_are_split_into_clips(path, cp, views, per_view, tmp_path):
    """The stock test batch (views x frames per view) gives each view's features as that view
    alone does, so the averaged scores are the mean over per-view runs."""
    model, cfg = stock_with_cp(path, tmp_path, **cp)
    frames_per_video = views * per_view
    test_pipeline = cfg.test_dataloader.dataset.pipeline
    assert any(step.type in ("TenCrop", "ThreeCrop") for step in test_pipeline)
    x = torch.randn(1, frames_per_video, 3, 32, 32, generator=torch.Generator().manual_seed(0),
                    dtype=torch.float64)
    model.double()
    with torch.no_grad():
        together = model.extract_feat(x, test_mode=True)[0]
        alone = torch.cat([model.extract_feat(view, test_mode=True)[0]
                           for view in x.split(per_view, dim=1)])
        # Other batch sizes take other conv algorithms: equal to float64 rounding, where views
        # split wrongly would differ by their whole size.
        assert_same_in_float64(together, alone)
        # TSN's head averages all frames; TSM's gives one row per view, averaged by predict().
        scores = model.cls_head(together, num_segs=frames_per_video).mean(0)
        per_view_scores = torch.stack([model.cls_head(view, num_segs=per_view)[0]
                                       for view in alone.split(per_view)])
        assert_same_in_float64(scores, per_view_scores.mean(0))
    # Another grouping of the same frames gives other features: the split matters.
    with torch.no_grad():
        shifted = model.extract_feat(x.roll(per_view // 2, dims=1), test_mode=True)[0]
    assert_differ_in_float64(shifted.roll(-(per_view // 2), 0), together)


def test_freezing_is_the_users_across_epochs(tmp_path):
    """Two epochs of mmengine's Runner (which calls train() every epoch): CP parameters the user
    froze stay frozen and unchanged, frozen_stages still freezes the backbone's stages, and the
    other CP modules train."""
    import os

    from mmengine.config import Config
    from mmengine.hooks import Hook
    from mmengine.registry import RUNNERS

    cfg = Config.fromfile(os.path.join(os.path.dirname(__file__), "..", "..", "mmaction_configs",
                                       "_base_", "toy.py"))
    cfg.work_dir = str(tmp_path)
    cfg.model = dict(
        type="Recognizer3D", data_preprocessor=cfg.data_preprocessor,
        backbone=dict(type="CPBackbone", cp_blocks=["layer2.0", "layer3.0"], cp_cfg=dict(k=4),
                      backbone=dict(type="C2D", depth=18, in_channels=1, pretrained=None,
                                    frozen_stages=1)),
        cls_head=dict(type="I3DHead", num_classes=4, in_channels=512, average_clips="prob"))
    cfg.train_dataloader.dataset.num_videos = 16
    cfg.train_dataloader.batch_size = 8
    cfg.train_cfg = dict(type="EpochBasedTrainLoop", max_epochs=2, val_interval=100)
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", interval=100)
    runner = RUNNERS.build(cfg)
    backbone = runner.model.backbone.backbone
    frozen_cp, trained_cp = backbone.layer2[0].relu.module, backbone.layer3[0].relu.module
    perturb_cp(runner.model)
    frozen_cp.requires_grad_(False)
    before = {}

    class Snapshot(Hook):  # after the Runner's init_weights, before the first step
        def before_train(self, runner):
            before.update(copy.deepcopy(runner.model.state_dict()))

    runner.register_hook(Snapshot())
    runner.train()
    assert runner.epoch == 2
    after = runner.model.state_dict()

    def changed(prefix):
        keys = [k for k in before if k.startswith(prefix) and before[k].is_floating_point()]
        assert keys, prefix
        return any(not torch.equal(before[k], after[k]) for k in keys)

    assert not any(p.requires_grad for p in frozen_cp.parameters())
    frozen_weights = [n for n, _ in frozen_cp.named_parameters()]
    assert not any(not torch.equal(before[f"backbone.layer2.0.relu.module.{n}"],
                                   after[f"backbone.layer2.0.relu.module.{n}"]) for n in frozen_weights)
    assert all(p.requires_grad for p in trained_cp.parameters())
    assert changed("backbone.layer3.0.relu.module.")
    assert not backbone.layer1[0].conv1.conv.weight.requires_grad  # frozen_stages=1
    assert not changed("backbone.layer1.0.conv1.conv.weight")
    assert changed("backbone.layer4.")


def test_cpnet_r18_training_step_compiles_whole_and_matches_eager():
    """The recognizer's network (backbone, head) under fullgraph=True, in float64 (see the timm
    test). mmaction2's loss computes its accuracy in numpy, so the loss runs outside."""
    from mmengine.config import Config

    path = os.path.join(os.path.dirname(__file__), "..", "..", "mmaction_configs", "_base_",
                        "models", "cpnet_r18.py")
    cfg = Config.fromfile(path).model
    cfg.backbone.backbone.pretrained = None
    cfg.cls_head.dropout_ratio = 0  # random masks differ between eager and traced runs
    torch.manual_seed(0)
    model = MODELS.build(cfg).double().train()
    twin = copy.deepcopy(model)
    x = torch.randn(2, 1, 3, 4, 64, 64, dtype=torch.float64)  # (N, clips, C, T, H, W)
    labels = torch.tensor([0, 3])

    def logits(recognizer):
        return lambda inputs: recognizer.cls_head(recognizer.extract_feat(inputs)[0])

    outputs = []
    for run in (logits(model), torch.compile(logits(twin), backend="aot_eager", fullgraph=True)):
        outputs.append(run(x))
        torch.nn.functional.cross_entropy(outputs[-1], labels).backward()
    assert_step_matches(model, twin, *outputs,
                        reduction_length=network_reduction_length(model, x.flatten(0, 1)))

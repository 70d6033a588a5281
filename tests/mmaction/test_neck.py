"""CPNeck on stock mmaction2 zoo configs: ResNets in 2D and 3D recognizers, X3D, Video Swin, MViT."""
import pytest
import torch
from mmaction.registry import MODELS
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmengine.runner.checkpoint import load_checkpoint

import cp_plugin.mmaction  # noqa: F401  (registers CPNeck)
from cp_plugin.mmaction import CPNeck
from cp_plugin.testing import assert_differ_in_float64, assert_same_in_float64

pytestmark = pytest.mark.usefixtures("mmaction_scope")

ZOO = {
    "tsn": "recognition/tsn/tsn_imagenet-pretrained-r50_8xb32-1x1x3-100e_kinetics400-rgb.py",
    "tsm": "recognition/tsm/tsm_imagenet-pretrained-r50_8xb16-1x1x8-50e_kinetics400-rgb.py",
    "i3d": "recognition/i3d/i3d_imagenet-pretrained-r50_8xb8-32x2x1-100e_kinetics400-rgb.py",
    "x3d": "recognition/x3d/x3d_s_13x6x1_facebook-kinetics400-rgb.py",
    "swin": "recognition/swin/swin-tiny-p244-w877_in1k-pre_8xb8-amp-32x2x1-30e_kinetics400-rgb.py",
    "mvit": "recognition/mvit/mvit-small-p244_32xb16-16x4x1-200e_kinetics400-rgb.py",
}
# The config edit a user writes for each (README), beside the neck itself: 2D recognizers need
# a backbone with several outputs, and TSM's head its one segment per clip after the neck.
EDITS = {
    "tsn": "model = dict(backbone=dict(out_indices=(2, 3)), neck=dict(type='CPNeck', in_channels=2048, k=4))",
    "tsm": ("model = dict(backbone=dict(out_indices=(2, 3)), cls_head=dict(num_segments=1),\n"
            "             neck=dict(type='CPNeck', in_channels=2048, k=4, num_segments=8))"),
    "i3d": "model = dict(neck=dict(type='CPNeck', in_channels=2048, k=4))",
    "x3d": "model = dict(neck=dict(type='CPNeck', in_channels=432, k=4))",
    "swin": "model = dict(neck=dict(type='CPNeck', in_channels=768, k=4))",
}
# Reduced inputs: (N, views, C, H, W) frames for 2D, (N, views, C, T, H, W) clips for 3D.
INPUTS = {"tsn": (1, 8, 3, 64, 64), "tsm": (1, 8, 3, 64, 64), "i3d": (1, 1, 3, 16, 64, 64),
          "x3d": (1, 1, 3, 8, 64, 64), "swin": (1, 1, 3, 8, 64, 64), "mvit": (1, 1, 3, 16, 64, 64)}


def zoo_config(name, tmp_path, edit=""):
    path = tmp_path / f"{name}.py"
    path.write_text(f"_base_ = ['mmaction::{ZOO[name]}']\n{edit}\n")
    cfg = Config.fromfile(str(path))
    if "pretrained" in cfg.model.backbone:  # no ImageNet download: the weights do not matter
        cfg.model.backbone.pretrained = None
    return cfg


def build(cfg):
    """The model in float64, where two ways of computing the same scores agree to 1e-9:
    PyTorch's default init; CP's output BN at zero."""
    return MODELS.build(cfg.model).eval().double()


def scores(model, x):
    return model.extract_feat(x, stage="head")[0]


def inputs(name, seed=0):
    return torch.randn(INPUTS[name], generator=torch.Generator().manual_seed(seed),
                       dtype=torch.float64)


def perturb(neck, seed=0):
    """Give the neck's output BN random weights, so CP is no longer the identity."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        neck.out_norm.weight.copy_(torch.randn(neck.out_norm.weight.shape, generator=gen))
        neck.out_norm.bias.copy_(0.1 * torch.randn(neck.out_norm.bias.shape, generator=gen))
    return neck


@pytest.mark.parametrize("name", list(EDITS))
def test_zoo_checkpoint_loads_with_only_the_neck_missing_and_scores_the_same(name, tmp_path):
    stock = build(zoo_config(name, tmp_path))
    checkpoint = tmp_path / "zoo.pth"  # the zoo's format: {'meta': ..., 'state_dict': ...}
    torch.save({"meta": {"mmaction_version": "1.2.0"}, "state_dict": stock.state_dict()}, checkpoint)

    with_neck = build(zoo_config(name, tmp_path, EDITS[name]))
    assert isinstance(with_neck.neck, CPNeck)
    keys = with_neck.load_state_dict(torch.load(checkpoint)["state_dict"], strict=False)
    assert keys.unexpected_keys == []
    assert keys.missing_keys and all(key.startswith("neck.") for key in keys.missing_keys)
    # (BN tolerates a missing num_batches_tracked, as in checkpoints older than it.)
    assert set(keys.missing_keys) == {f"neck.{key}" for key in with_neck.neck.state_dict()
                                      if not key.endswith("num_batches_tracked")}
    load_checkpoint(with_neck, str(checkpoint), map_location="cpu")  # mmengine's own loader

    x = inputs(name)
    with torch.no_grad():
        expected, ours = scores(stock, x), scores(with_neck, x)
    assert_same_in_float64(ours, expected)


def clips_of(frames, segments):
    """(N*S, C, H, W) backbone frames -> (N, C, S, H, W), as Recognizer2D regroups them."""
    return frames.unflatten(0, (-1, segments)).transpose(1, 2)


@pytest.mark.parametrize("name", ["tsn", "i3d", "x3d", "swin"])
def test_non_identity_neck_is_cp_on_the_backbones_last_map(name, tmp_path):
    model = build(zoo_config(name, tmp_path, EDITS[name]))
    perturb(model.neck)
    x = inputs(name)
    with torch.no_grad():
        features = model.backbone(x.flatten(0, 1))
        if name == "tsn":  # CP on the clip of 8 segments, averaged over them, one segment each
            by_hand = model.cls_head(
                plain_cp(model.neck)(clips_of(features[-1], 8)).mean(2), num_segs=1)
        else:
            by_hand = model.cls_head(plain_cp(model.neck)(features))
        ours = scores(model, x)
        # Other memory layouts may take other float kernels: rounding differs.
        assert_same_in_float64(ours, by_hand)
        plain = model.cls_head(features[-1], num_segs=8) if name == "tsn" else model.cls_head(features)
        assert_differ_in_float64(ours, plain)  # CP changed them


def plain_cp(neck):
    """The neck's weights in a plain CPModule: the CP the neck must apply."""
    from cp_plugin import CPModule

    module = CPModule(neck.in_channels, k=neck.k, mlp_channels=neck.mlp_channels).eval()
    module.to(neck.out_norm.weight.dtype)
    module.load_state_dict(neck.state_dict())
    return module


def test_recognizer2d_test_views_get_cp_per_view(tmp_path):
    """TSM's twice_sample x ThreeCrop test batch (6 views of 8 segments) stacked along T: each
    view's CP sees its own 8 segments, so the batch scores as its views scored one by one."""
    model = build(zoo_config("tsm", tmp_path, EDITS["tsm"]))
    perturb(model.neck)
    x = torch.randn(1, 6 * 8, 3, 64, 64, generator=torch.Generator().manual_seed(0),
                    dtype=torch.float64)
    with torch.no_grad():
        together = model.extract_feat(x, test_mode=True)[0]
        alone = torch.cat([model.extract_feat(view, test_mode=True)[0]
                           for view in x.split(8, dim=1)])
        # Averaged over the 6 views, against the mean of the per-view features.
        assert_same_in_float64(together[0], alone.mean(0))
        shifted = model.extract_feat(x.roll(4, dims=1), test_mode=True)[0]
    # The grouping matters.
    assert_differ_in_float64(shifted, together)


def test_training_step_reaches_the_neck(tmp_path):
    model = build(zoo_config("i3d", tmp_path, EDITS["i3d"])).train()
    from mmaction.structures import ActionDataSample

    data = dict(inputs=list(inputs("i3d").unbind(0)),
                data_samples=[ActionDataSample().set_gt_label(3)])
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    before = model.neck.out_norm.weight.detach().clone()
    losses = model.train_step(data, optim)
    assert torch.isfinite(losses["loss_cls"])
    assert not torch.equal(model.neck.out_norm.weight, before)  # zero-init BN learns first


def test_mvit_class_token_output_is_refused_with_the_fix(tmp_path):
    cfg = zoo_config("mvit", tmp_path, "model = dict(neck=dict(type='CPNeck', in_channels=768, k=4))")
    model = build(cfg)
    with pytest.raises(TypeError, match="output_cls_token=False.*with_cls_token=False"):
        scores(model, inputs("mvit"))
    # With the fix the head reads the patch map, and CP changes the scores.
    cfg = zoo_config("mvit", tmp_path, (
        "model = dict(backbone=dict(output_cls_token=False), cls_head=dict(with_cls_token=False),\n"
        "             neck=dict(type='CPNeck', in_channels=768, k=4))"))
    model = build(cfg)
    with torch.no_grad():
        identity = scores(model, inputs("mvit"))
        perturb(model.neck)
        changed = scores(model, inputs("mvit"))
    assert_differ_in_float64(changed, identity)


def test_single_output_2d_backbone_is_refused_with_the_fix(tmp_path):
    cfg = zoo_config("tsn", tmp_path, "model = dict(neck=dict(type='CPNeck', in_channels=2048))")
    with pytest.raises(ValueError, match=r"Recognizer2D.*out_indices=\(2, 3\)"):
        scores(build(cfg), inputs("tsn"))


@pytest.mark.parametrize("x,error,match", [
    (torch.randn(2, 4096), ValueError, r"shape \(2, 4096\).*spatio-temporal map"),
    ((torch.randn(2, 8, 4, 3, 3),), None, None),
    ([torch.randn(2, 8, 6, 3, 3)], ValueError, "T=6 frames, not a multiple of num_segments=4"),
    ((torch.randn(2, 8, 4, 3, 3), torch.randn(2, 8, 4, 3, 3)), None, None),
])
def test_inputs_and_errors(x, error, match):
    neck = CPNeck(8, k=2, num_segments=4)
    if error is None:
        out, aux = neck(x)
        assert aux == {} and isinstance(out, tuple) and len(out) == len(x)
        assert out[-1].shape == x[-1].shape
        return
    with pytest.raises(error, match=match):
        neck(x)


def test_bad_arguments():
    with pytest.raises(IndexError, match="index=2 is out of range: the backbone gives 2"):
        CPNeck(8, index=2)((torch.randn(1, 8, 2, 3, 3),) * 2)
    with pytest.raises(TypeError, match="index must be an int"):
        CPNeck(8, index="last")
    with pytest.raises(ValueError, match="num_segments must be >= 2"):
        CPNeck(8, num_segments=1)
    with pytest.raises(ValueError, match=r"^CPNeck: x of shape \(1, 16, 2, 3, 3\) has 16 channels "
                                         r"\(dim 1\), CPNeck takes 8; build it with in_channels=16"):
        CPNeck(8)(torch.randn(1, 16, 2, 3, 3))
    with pytest.raises(TypeError, match=r"^CPNeck: unknown option 'kk' \(did you mean 'k'\?\); "
                                        r"valid options: in_channels, index, num_segments, k, "):
        CPNeck(8, kk=3)
    assert "index=-1, num_segments=4" in repr(CPNeck(8, num_segments=4))


def test_readme_neck_example(tmp_path):
    """The README's X3D + CPNeck snippet builds, starts as X3D and has CP at its output."""
    from readme import write_readme_config

    path = write_readme_config(r"_base_ = \['mmaction::recognition/x3d/", tmp_path / "x3d_cp.py")
    model = build(Config.fromfile(path))
    assert isinstance(model.neck, CPNeck) and model.neck.k == 8
    stock = build(zoo_config("x3d", tmp_path))
    model.load_state_dict(stock.state_dict(), strict=False)
    x = inputs("x3d")
    with torch.no_grad():
        assert_same_in_float64(scores(model, x), scores(stock, x))

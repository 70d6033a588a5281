"""timm_adapters: CP modules in timm models, the video wrapper, model names and mmaction2 use."""
import copy
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import cp_plugin.mmaction  # noqa: F401  (before mmaction2: repairs its install, registers our modules)
import timm
import timm.models
import timm.optim
import timm_adapters
from cp_plugin import CPModule
from cp_plugin.call_layout import current_layout
from cp_plugin.insertion import ActivationSite, insertion_sites
from cp_plugin.presets import CP_PRESETS
from cp_plugin.testing import (assert_close_to_rounding, assert_differ_beyond_rounding,
                               assert_differ_in_float64, assert_same_in_float64,
                               assert_step_matches,
                               network_reduction_length, summed_fan_in)
from timm_adapters import (UnsupportedBlockError, VideoModel, create_video_model, insert_cp,
                           register_block)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Run these small models on one thread. With two OpenMP threads on a 2-core machine that
    is busy elsewhere, each op waits for a descheduled thread: a 32 px ResNet-50 forward took
    2.2 s instead of 0.04 s. Restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def clips(n=2, t=4, size=32, channels=3, seed=0):
    return torch.randn(n, channels, t, size, size, generator=torch.Generator().manual_seed(seed))


def c2d_features(plain, x):
    """The plain image model's per-frame features of clips x, as (N, C', T, H', W')."""
    n, c, t, h, w = x.shape
    frames = x.permute(0, 2, 1, 3, 4).reshape(n * t, c, h, w)
    features = plain.forward_features(frames)
    return features.reshape(n, t, *features.shape[1:]).permute(0, 2, 1, 3, 4)


def c2d(plain, x):
    """The plain image model as C2D: per-frame features, global average over T, H, W, classifier."""
    video = c2d_features(plain, x)
    return video, plain.get_classifier()(video.mean(dim=(2, 3, 4)))


def cp_modules(model):
    return [site.module for site in insertion_sites(model) if isinstance(site.module, CPModule)]


def assert_every_cp_acts(model, x):
    """Each CP module changes the map it is given by more than its own rounding could (a CP
    module fresh from one training step changes the logits by little, but not by nothing)."""
    seen = []  # copies: the block's activation may run in place on CP's output
    handles = [cp.register_forward_hook(
        lambda cp, args, out: seen.append((cp, args[0].clone(), out.clone())))
        for cp in cp_modules(model)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    assert len(seen) == len(handles) > 0
    for cp, before, after in seen:
        assert_differ_beyond_rounding(after, before, reduction_length=summed_fan_in(cp) + cp.k)


def activate_cp(model, seed=0):
    """Give every CP module a non-zero output BN so that it is no longer the identity."""
    gen = torch.Generator().manual_seed(seed)
    for cp in cp_modules(model):
        with torch.no_grad():
            cp.out_norm.weight.copy_(torch.randn(cp.out_norm.weight.shape, generator=gen))
            cp.out_norm.bias.copy_(0.1 * torch.randn(cp.out_norm.bias.shape, generator=gen))
    return model


def preset_blocks(name):
    return [b if isinstance(b, str) else b["block"] for b in CP_PRESETS[name]["blocks"]]


def checkpointing_keeps_gradients(model, x, loss):
    """Gradients of ``loss(model, x)`` without and then with grad checkpointing, in float64: the
    same to 1e-9 of each tensor's largest (recomputed activations may sit elsewhere in memory),
    CP's included. Returns the checkpointed ones; the model is float64 after."""
    model.double()
    x = x.double()

    def grads():
        model.zero_grad()
        loss(model, x).backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    model.train()
    plain_grads = grads()
    model.set_grad_checkpointing(True)
    ckpt_grads = grads()
    assert plain_grads.keys() == ckpt_grads.keys() and any(".module." in n for n in ckpt_grads)
    for n in plain_grads:
        assert_same_in_float64(ckpt_grads[n], plain_grads[n], msg=n)
    return ckpt_grads


def sgd_step(model, x, labels, lr=0.1):
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    F.cross_entropy(model(x), labels).backward()
    optimizer.step()
    optimizer.zero_grad()


# ---------------------------------------------------------------------------------------------
# Insertion into supported families: exact C2D at init, keys, training changes the output.

FAMILIES = [  # model, blocks, final activation attribute
    ("resnet18", "resnet18", "act2"),
    ("resnet50", "resnet50", "act3"),
    ("resnext50_32x4d", "resnet50", "act3"),
    ("seresnet50", "resnet50", "act3"),
    ("ecaresnet50d", "resnet50", "act3"),
    ("skresnet18", "resnet18", "act"),
    ("resnest14d", ["layer2.0", "layer3.0"], "act3"),
    ("regnety_002", ["s3.b1", "s3.b2"], "act3"),
]


@pytest.mark.parametrize("name,blocks,act", FAMILIES, ids=[f[0] for f in FAMILIES])
def test_identity_at_init_keys_and_training(name, blocks, act):
    torch.manual_seed(0)
    video = create_video_model(name, blocks, num_classes=5)
    plain = timm.create_model(name, num_classes=5)
    names = preset_blocks(blocks) if isinstance(blocks, str) else blocks
    assert set(names) <= set(dict(plain.named_modules()))  # e.g. regnet's 's3.b1' exists

    # State dict: the plain model's keys plus CP keys under <block>.<act>.module.
    loaded = plain.load_state_dict(video.state_dict(), strict=False)
    cp_keys = set(loaded.unexpected_keys)
    assert loaded.missing_keys == [] and cp_keys
    assert set(video.state_dict()) == set(plain.state_dict()) | cp_keys
    assert {k.split(".module.")[0] for k in cp_keys} == {f"{b}.{act}" for b in names}
    assert len(cp_modules(video)) == len(names)

    video.eval()
    plain.eval()
    x = clips()
    with torch.no_grad():
        features, logits = c2d(plain, x)
        assert torch.equal(video.forward_features(x), features)
        assert torch.equal(video(x), logits)

    sgd_step(video, x, torch.tensor([1, 3]))
    assert all(cp.out_norm.weight.any() for cp in cp_modules(video))
    video.eval()
    assert_every_cp_acts(video, x)


# ---------------------------------------------------------------------------------------------
# Families whose blocks end with the residual add: CP goes on the block's output.

ADD_LAST_FAMILIES = [  # model, blocks (each ends with its residual add)
    ("convnext_atto", ["stages.2.blocks.0", "stages.2.blocks.1"]),  # ConvNeXtBlock
    ("resnetv2_18", ["stages.2.blocks.1"]),  # PreActBasic
    ("resnetv2_50", ["stages.2.blocks.1"]),  # PreActBottleneck
    ("efficientnet_b0", ["blocks.5.1"]),  # InvertedResidual
    ("mobilenetv3_small_100", ["blocks.2.1"]),  # InvertedResidual with SE
    ("regnetv_040", ["s3.b2"]),  # PreBottleneck
]


def c2d_logits(plain, x):
    """C2D logits of an image model whose head may norm (ConvNeXt) or be a conv (ResNetV2)."""
    pooled = c2d_features(plain, x).mean(dim=(2, 3, 4))
    return plain.forward_head(pooled[:, :, None, None]).flatten(1)


def cp_after_block_by_hand(plain, block_name, cp):
    """The plain image model with ``cp`` applied to one block's output by a forward hook,
    viewing the (N*T, C, H, W) output as clips of ``plain.num_clips``."""
    def hook(module, args, output):
        n = plain.num_clips
        video = output.reshape(n, -1, *output.shape[1:]).transpose(1, 2)
        out = cp(video)
        return out.transpose(1, 2).reshape(output.shape)
    return dict(plain.named_modules())[block_name].register_forward_hook(hook)


@pytest.mark.parametrize("name,blocks", ADD_LAST_FAMILIES, ids=[f[0] for f in ADD_LAST_FAMILIES])
def test_blocks_that_end_with_the_add_take_cp_on_their_output(name, blocks):
    torch.manual_seed(0)
    video = create_video_model(name, blocks, num_classes=5, cp_k=2)
    plain = timm.create_model(name, num_classes=5)
    loaded = plain.load_state_dict(video.state_dict(), strict=False)
    assert loaded.missing_keys == []  # the blocks' own keys did not move
    assert {k.split(".module.")[0] for k in loaded.unexpected_keys} == set(blocks)
    video.eval().double()
    plain.eval().double()
    x = clips(size=64).double()
    with torch.no_grad():
        assert torch.equal(video(x), c2d_logits(plain, x))  # identity at init
        activate_cp(video)
        plain.num_clips = x.shape[0]
        handles = [cp_after_block_by_hand(plain, block, cp)
                   for block, cp in zip(blocks, cp_modules(video))]
        try:
            by_hand = c2d_logits(plain, x)
        finally:
            for handle in handles:
                handle.remove()
        out = video(x)
        assert_same_in_float64(out, by_hand)
        assert_differ_in_float64(out, c2d_logits(plain, x))


def test_a_block_without_its_skip_is_refused():
    with pytest.raises(UnsupportedBlockError, match=r"'blocks\.0\.0' \(timm\.models\."
                       r"_efficientnet_blocks\.DepthwiseSeparableConv\).*`has_skip` is False"):
        create_video_model("efficientnet_b0", ["blocks.0.0"])  # 32 -> 16 channels


def test_grad_checkpointing_per_stage_recomputes_cp():
    """ConvNeXt keeps the checkpointing flag on each stage, not on the model."""
    torch.manual_seed(0)
    model = activate_cp(create_video_model("convnext_atto", ["stages.2.blocks.1"], num_classes=3))
    x, labels = clips(size=64), torch.tensor([0, 2])
    checkpointing_keeps_gradients(model, x, lambda m, x: F.cross_entropy(m(x), labels))
    assert not getattr(model.backbone, "grad_checkpointing", False)
    assert all(stage.grad_checkpointing for stage in model.backbone.stages)


# ---------------------------------------------------------------------------------------------
# Refusals.

@pytest.mark.parametrize("name,blocks,match", [
    ("res2net50_26w_4s", "resnet50",
     r"'layer2\.2' \(timm\.models\.res2net\.Bottle2neck\).*shared activation"),
    ("legacy_seresnet18", "resnet18",
     r"'layer2\.0' \(timm\.models\.senet\.SEResNetBlock\).*shared activation.*seresnet18"),
    ("regnetz_005", ["s3.b1"], r"'s3\.b1'.*no residual add.*`downsample` is None"),
])
def test_unsupported_timm_blocks_are_refused(name, blocks, match):
    with pytest.raises(UnsupportedBlockError, match=match):
        create_video_model(name, blocks)


def test_torchvision_resnet_is_refused():
    model = torchvision.models.resnet18()
    with pytest.raises(UnsupportedBlockError, match=r"torchvision\.models\.resnet\.BasicBlock\).*"
                       r"shared activation.*Use timm's ResNet"):
        insert_cp(model, "resnet18")
    assert isinstance(UnsupportedBlockError("x"), ValueError)
    assert not list(insertion_sites(model))


def test_bad_selections_leave_the_model_unchanged():
    model = timm.create_model("resnet18")
    with pytest.raises(ValueError, match=r"no block named 'layer9\.0'.*layer1\.0, layer1\.1"):
        insert_cp(model, ["layer2.0", "layer9.0"])
    with pytest.raises(UnsupportedBlockError,
                       match=r"'layer3' \(torch\.nn.*Sequential\).*register_block"):
        insert_cp(model, ["layer2.0", "layer3"])
    with pytest.raises(TypeError, match=r"^insert_cp: unknown option 'kk' \(did you mean 'k'\?\)"):
        insert_cp(model, "resnet18", kk=3)
    with pytest.raises(ValueError, match="k must be >= 1"):
        insert_cp(model, ["layer2.0", dict(block="layer3.0", k=0)])
    with pytest.raises(ValueError, match=r"^blocks: unknown preset 'resnet19' \(did you mean "
                                         r"'resnet18'\?\)"):
        insert_cp(model, "resnet19")
    assert not list(insertion_sites(model))
    video = VideoModel(model)
    insert_cp(video, ["layer3.1"], k=2)  # into the image model of a VideoModel
    with pytest.raises(ValueError, match="already has a CPModule inserted"):
        insert_cp(model, ["layer3.1"])


class AddThenAct(nn.Module):
    """A residual block of a user's own: conv, BN, add, then its own activation."""

    def __init__(self, channels=8):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn = nn.BatchNorm2d(channels)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)) + x)


class SharedAct(AddThenAct):
    def forward(self, x):
        return self.act(self.act(self.bn(self.conv(x))) + x)


class ActNotLast(AddThenAct):
    def forward(self, x):
        return self.act(self.bn(self.conv(x)) + x) * 2


def toy_net(block_class):
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), block_class(), block_class())


def test_register_block_and_probe(monkeypatch):
    # Registrations made here end with the test.
    monkeypatch.setattr(cp_plugin.blocks, "_TABLE", dict(cp_plugin.blocks._TABLE))
    model = toy_net(AddThenAct)
    with pytest.raises(UnsupportedBlockError, match=r"AddThenAct is not a registered.*"
                       r"register_block\(AddThenAct, activation='<attr>'\)"):
        insert_cp(model, ["1"])
    register_block(AddThenAct, "act")
    inserted = insert_cp(model, ["1", "2"], k=2)
    assert list(inserted) == ["1", "2"] and inserted["1"].in_channels == 8
    assert isinstance(model[1].act, ActivationSite)
    assert timm_adapters.candidate_blocks(toy_net(SharedAct)) == ["1", "2"]  # by subclass

    # The probe checks each instance, whatever the registry says.
    for cls, match in [(SharedAct, r"shared activation: `act` ran 2 time\(s\) during 1 call"),
                       (ActNotLast, r"`act` is not the last step of the block")]:
        model = toy_net(cls)
        with pytest.raises(UnsupportedBlockError, match=match):
            insert_cp(model, ["2"])
        assert not list(insertion_sites(model))
    register_block(timm.models.res2net.Bottle2neck, "relu")  # a wrong registration is caught
    with pytest.raises(UnsupportedBlockError, match=r"`relu` ran 5 time\(s\) during 1 call"):
        insert_cp(timm.models.res2net.res2net50_26w_4s(), ["layer2.0"])
    with pytest.raises(ValueError, match="activation must be the attribute name"):
        register_block(AddThenAct, "a.b")


def test_probe_restores_modes_and_leaves_weights():
    model = timm.create_model("resnet18")
    model.train()
    model.layer1.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    insert_cp(model, ["layer3.0"])
    assert model.training and not model.layer1.training and model.layer2.training
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())


# ---------------------------------------------------------------------------------------------
# The video wrapper.

def test_clip_shapes_and_clips_are_independent():
    torch.manual_seed(0)
    model = activate_cp(timm.create_model("cpnet_resnet18", num_classes=7)).eval().double()
    for t in (4, 8, 16):
        for n in (1, 2, 3):
            x = clips(n, t, seed=10 * t + n).double()
            with torch.no_grad():
                features = model.forward_features(x)
                logits = model.forward_head(features)
            assert features.shape == (n, 512, t, 1, 1) and logits.shape == (n, 7)
            if n == 3:  # clip-major splitting: each clip's result is its own
                with torch.no_grad():
                    alone = torch.cat([model(x[i:i + 1]) for i in range(n)])
                assert_same_in_float64(logits, alone)


def test_trained_at_8_frames_evaluates_at_16():
    torch.manual_seed(0)
    model = timm.create_model("cpnet_resnet18", num_classes=4)
    sgd_step(model, clips(2, 8), torch.tensor([0, 3]))
    model.eval()
    for n in (1, 3):
        x = clips(n, 16, seed=n)
        with torch.no_grad():
            out = model(x)
        assert out.shape == (n, 4) and torch.isfinite(out).all()
        assert_every_cp_acts(model, x)  # the trained CP acts at T=16


def test_candidate_blocks_are_the_blocks_that_take_cp():
    """EfficientNet's blocks that change shape have no residual add: not candidates."""
    model = timm.create_model("efficientnet_b0")
    candidates = timm_adapters.candidate_blocks(model)
    assert "blocks.1.1" in candidates
    assert not {"blocks.0.0", "blocks.1.0", "blocks.6.0"} & set(candidates)
    assert len(insert_cp(model, candidates, k=2)) == len(candidates)  # every one takes CP

def test_wrapper_rejects_frames():
    model = timm.create_model("cpnet_resnet18")
    with pytest.raises(ValueError, match=r"^VideoModel: x must be clips \(N, C, T, H, W\), got 4 "
                                         r"dims \(8, 3, 32, 32\)"):
        model(torch.zeros(8, 3, 32, 32))


def test_clips_in_the_wrong_order_are_answered_with_the_permute():
    model = timm.create_model("cpnet_resnet18")
    with pytest.raises(ValueError, match=r"^VideoModel: x of shape \(2, 8, 3, 32, 32\) looks like "
                                         r"clips in \(N, T, C, H, W\) order; VideoModel takes "
                                         r"\(N, C, T, H, W\): pass x\.permute\(0, 2, 1, 3, 4\)"):
        model(torch.zeros(2, 8, 3, 32, 32))
    gray = timm_adapters.create_video_model("resnet18", [], in_chans=1)
    with pytest.raises(ValueError, match=r"has 3 channels \(dim 1\), VideoModel takes 1"):
        gray(torch.zeros(2, 3, 4, 32, 32))


def test_timm_model_api():
    torch.manual_seed(0)
    model = timm.create_model("cpnet_resnet18", num_classes=5, drop_rate=0.2)
    assert isinstance(model, VideoModel)
    assert model.num_classes == 5 and model.num_features == model.head_hidden_size == 512
    assert model.get_classifier() is model.backbone.fc
    assert model.pretrained_cfg == model.default_cfg == {**model.backbone.pretrained_cfg,
                                                         "num_frames": 8}
    assert timm.create_model("cpnet_resnet18", num_frames=16).pretrained_cfg["num_frames"] == 16
    with pytest.raises(ValueError, match=r"num_frames .* positive int, got 0"):
        create_video_model("resnet18", [], num_frames=0)
    assert timm.data.resolve_model_data_config(model)["mean"] == (0.485, 0.456, 0.406)
    x = clips()
    model.eval()
    with torch.no_grad():
        features = model.forward_features(x)
        assert torch.equal(model.forward_head(features, pre_logits=True), features.mean((2, 3, 4)))
        model.reset_classifier(3, global_pool="max")
        assert model(x).shape == (2, 3) and model.num_classes == 3
        assert torch.equal(model.forward_head(features, pre_logits=True), features.amax((2, 3, 4)))
        model.reset_classifier(0)
        assert model(x).shape == (2, 512)
    with pytest.raises(ValueError, match="global_pool must be one of"):
        model.reset_classifier(3, global_pool="catavgmax")
    twin = copy.deepcopy(model)  # as timm's EMA does: the copy runs its own CP modules
    assert not set(map(id, cp_modules(twin))) & set(map(id, cp_modules(model)))
    with torch.no_grad():
        assert torch.equal(twin(x), model(x))

    # Layer-decay groups: each CP module sits in its block's group, as many groups as plain timm.
    groups = timm.models.group_parameters(model, model.group_matcher())
    plain_groups = timm.models.group_parameters(model.backbone, model.backbone.group_matcher())
    assert len(groups) == len(plain_groups)
    group_of = {name: g for g, names in groups.items() for name in names}
    assert (group_of["backbone.layer2.1.act2.module.out_norm.weight"]
            == group_of["backbone.layer2.1.conv1.weight"])
    assert group_of["backbone.conv1.weight"] == 0
    timm.optim.create_optimizer_v2(model, "sgd", lr=0.1, layer_decay=0.9)


def test_features_only():
    x = clips(2, 4).double()
    maps = {}
    for feature_cls in ("list", "fx"):  # fx: CP goes in before timm traces the model
        torch.manual_seed(0)
        model = create_video_model("resnet18", "resnet18", features_only=True,
                                   out_indices=(2, 3), feature_cls=feature_cls)
        activate_cp(model).eval().double()
        assert model.feature_info.channels() == [128, 256] and len(cp_modules(model)) == 4
        with torch.no_grad():
            maps[feature_cls] = model(x)
        assert [m.shape for m in maps[feature_cls]] == [(2, 128, 4, 4, 4), (2, 256, 4, 2, 2)]
    for listed, traced in zip(maps["list"], maps["fx"]):
        assert_same_in_float64(listed, traced)


@pytest.mark.parametrize("name,blocks", [("resnet18", "resnet18"),
                                         ("convnext_atto", ["stages.2.blocks.1"])])
def test_forward_intermediates_gives_maps_of_clips(name, blocks):
    torch.manual_seed(0)
    model = activate_cp(create_video_model(name, blocks, num_classes=3)).eval()
    plain = timm.create_model(name, num_classes=3).eval()
    x = clips(2, 4, size=64)
    with torch.no_grad():
        features, maps = model.forward_intermediates(x)
        assert torch.equal(features, model.forward_features(x))
        n_maps = len(plain.forward_intermediates(torch.zeros(1, 3, 64, 64))[1])
        assert len(maps) == n_maps and all(m.shape[:3:2] == (2, 4) for m in maps)
        last = model.forward_intermediates(x, indices=1, intermediates_only=True)
    assert len(last) == 1 and last[0].shape[2] == 4
    # The maps are the ones after CP: the last stage's map differs from the plain model's.
    plain.load_state_dict(model.state_dict(), strict=False)
    with torch.no_grad():
        plain_last = plain.forward_intermediates(video_frames(x), indices=1,
                                                 intermediates_only=True)[0]
    assert_differ_beyond_rounding(last[0].transpose(1, 2).flatten(0, 1), plain_last,
                                  reduction_length=network_reduction_length(model, x))
    with pytest.raises(ValueError, match="output_fmt must be 'NCTHW'"):
        model.forward_intermediates(x, output_fmt="NCHW")


def video_frames(x):
    return x.transpose(1, 2).flatten(0, 1)


def test_features_only_grad_checkpointing():
    torch.manual_seed(0)
    # timm's features model flattens ConvNeXt's top level: stages.2 becomes stages_2.
    model = activate_cp(create_video_model("convnext_atto", ["stages_2.blocks.1"],
                                           features_only=True, out_indices=(2, 3)))
    x = clips(2, 4, size=64)
    checkpointing_keeps_gradients(model, x, lambda m, x: sum(f.square().mean() for f in m(x)))
    # Backward of the two maps restored the layout for the recompute, and took it away again.
    assert current_layout(model) is None


def test_grad_checkpointing_recomputes_cp_with_the_clip_count():
    torch.manual_seed(0)
    model = activate_cp(timm.create_model("cpnet_resnet18", num_classes=3))
    x, labels = clips(), torch.tensor([0, 2])
    calls = []
    cp_modules(model)[0].register_forward_hook(lambda *args: calls.append(1))
    ckpt_grads = checkpointing_keeps_gradients(model, x, lambda m, x: F.cross_entropy(m(x), labels))
    assert model.backbone.grad_checkpointing
    assert len(calls) == 1 + 2  # plain forward; checkpointed forward, then its recompute
    cp_names = [n for n in ckpt_grads if ".module." in n]
    assert all(ckpt_grads[n].any() for n in cp_names)


def test_forward_keeps_no_state_between_calls():
    """Any call order, and concurrent calls from several threads with different clip counts,
    give what a fresh model gives; the inner image model alone refuses frames it cannot split."""
    from concurrent.futures import ThreadPoolExecutor

    torch.manual_seed(0)
    model = activate_cp(create_video_model("test_resnet", ["layer2.0"], cp_k=4, num_classes=3))
    model.eval()
    fresh = copy.deepcopy(model)
    inputs = [clips(n, t, seed=n) for n, t in [(1, 4), (2, 3), (3, 2)]]
    with torch.no_grad():
        expected = [copy.deepcopy(fresh)(x) for x in inputs]
        with ThreadPoolExecutor(3) as pool:
            for _ in range(4):
                outputs = list(pool.map(model, inputs * 4))
                for i, out in enumerate(outputs):
                    torch.testing.assert_close(out, expected[i % 3], rtol=0, atol=0)
        # The layout is not left behind: the inner model called directly cannot guess it.
        with pytest.raises(RuntimeError, match="outside a video wrapper's forward"):
            model.backbone(inputs[1].transpose(1, 2).flatten(0, 1))
        # Regrouping the same frames into other clips would change the answer.
        regrouped = model(inputs[1].transpose(1, 2).reshape(3, 2, 3, 32, 32).transpose(1, 2))
        assert_differ_beyond_rounding(regrouped.sum(0), expected[1].sum(0),
                                      reduction_length=network_reduction_length(model, inputs[1]))


def test_a_graph_break_inside_a_cp_model_leaves_the_clip_layout_readable(monkeypatch):
    """torch.compile without fullgraph, a break inside the backbone (any user code may cause
    one): dynamo then runs the wrapper eagerly and traces the blocks, which must still find the
    call's clip layout."""
    torch.manual_seed(0)
    model = activate_cp(create_video_model("test_resnet", ["layer2.0"], cp_k=4, num_classes=3))
    model.double()
    x = clips(2, 4).double()
    expected = model(x)
    forward = CPModule.forward

    def forward_with_a_break(self, *args, **kwargs):
        torch._dynamo.graph_break()
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(CPModule, "forward", forward_with_a_break)
    torch._dynamo.reset()
    out = torch.compile(model, backend="eager")(x)
    torch._dynamo.reset()
    assert_same_in_float64(out, expected)


def test_cpnet_resnet18_training_step_compiles_whole_and_matches_eager():
    """fullgraph=True: no graph break anywhere (search, fused pair MLP, clip layout). Backend
    'aot_eager' traces forward and backward as inductor would, without its code generation
    (minutes on 2 CPU cores). In float64, where rounding is far below any error."""
    torch.manual_seed(0)
    model = timm.create_model("cpnet_resnet18", num_classes=3).double().train()
    twin = copy.deepcopy(model)
    x, labels = torch.randn(2, 3, 4, 64, 64, dtype=torch.float64), torch.tensor([0, 2])
    outputs = []
    for run in (model, torch.compile(twin, backend="aot_eager", fullgraph=True)):
        outputs.append(run(x))
        F.cross_entropy(outputs[-1], labels).backward()
    assert_step_matches(model, twin, *outputs, reduction_length=network_reduction_length(model, x))


# ---------------------------------------------------------------------------------------------
# Registered names and weights.

@pytest.mark.parametrize("depth", [18, 34, 50, 101])
def test_registered_cpnets_use_the_presets(depth):
    name = f"resnet{depth}"
    model = timm.create_model(f"cpnet_{name}", num_classes=3)
    preset = CP_PRESETS[name]
    sites = {n[len("backbone."):].rsplit(".", 1)[0]: m for n, m in model.named_modules()
             if isinstance(m, ActivationSite)}
    assert list(sites) == preset_blocks(name)
    for entry, site in zip(preset["blocks"], sites.values()):
        options = entry if isinstance(entry, dict) else {}
        assert site.module.k == preset["k"]
        assert site.module.shrink == options.get("shrink", 1)
        if "bottleneck_channels" in options:
            assert site.module.search_channels == options["bottleneck_channels"]
    assert f"cpnet_{name}" in timm.list_models("cpnet_*")


def test_cp_keywords_of_the_model_names():
    model = timm.create_model("cpnet_resnet18", cp_blocks=["layer3.1"], cp_k=2,
                              cp_mlp_channels=(16,), num_classes=3)
    (cp,) = cp_modules(model)
    assert (cp.k, cp.mlp_channels, cp.in_channels) == (2, (16,), 256)
    assert not cp_modules(timm.create_model("cpnet_resnet18", cp_blocks=[]))
    with pytest.raises(TypeError, match=r"^create_video_model: unknown CP keyword 'cp_kay' \(did "
                                        r"you mean 'cp_k'\?\); valid CP keywords: cp_blocks, "):
        timm.create_model("cpnet_resnet18", cp_kay=2)
    with pytest.raises(ValueError, match=r"^cp_blocks: unknown preset 'resnet152'"):
        create_video_model("resnet50", cp_blocks="resnet152")
    with pytest.raises(TypeError, match="given twice"):
        timm.create_model("cpnet_resnet18", cp_k=2, cp_cfg=dict(k=3))
    with pytest.raises(ValueError, match="cp_blocks is required for 'seresnet50'"):
        create_video_model("seresnet50")
    assert timm.create_model("cpnet_resnet18.a1_in1k").pretrained_cfg["tag"] == "a1_in1k"


def test_imagenet_weights_from_a_local_file_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.manual_seed(1)
    image_model = timm.create_model("resnet18")
    path = str(tmp_path / "resnet18_imagenet.pth")
    torch.save(image_model.state_dict(), path)

    model = timm.create_model("cpnet_resnet18", pretrained=True,
                              pretrained_cfg_overlay=dict(file=path), num_classes=5)
    assert model.pretrained_cfg["file"] == path
    for key, value in image_model.state_dict().items():
        if not key.startswith("fc."):
            assert torch.equal(model.state_dict()[key], value), key
    assert model.get_classifier().weight.shape == (5, 512)

    # Plain weights into a video model: only the CP keys are missing.
    video = timm.create_model("cpnet_resnet18")
    loaded = video.load_state_dict(image_model.state_dict(), strict=False)
    assert loaded.unexpected_keys == [] and loaded.missing_keys
    assert all(".module." in k for k in loaded.missing_keys)
    cp_keys = set(video.state_dict()) - set(image_model.state_dict())
    # (torch fills in a BN's missing num_batches_tracked without reporting it)
    assert set(loaded.missing_keys) == {k for k in cp_keys if "num_batches" not in k}
    video.eval(), image_model.eval()
    with torch.no_grad():
        assert torch.equal(video(clips()), c2d(image_model, clips())[1])

    # The video model's own checkpoints load back through timm's checkpoint_path.
    activate_cp(video)
    checkpoint = str(tmp_path / "cpnet.pth")
    torch.save(video.state_dict(), checkpoint)
    again = timm.create_model("cpnet_resnet18", checkpoint_path=checkpoint)
    assert all(torch.equal(again.state_dict()[k], v) for k, v in video.state_dict().items())


def test_readme_timm_snippet_runs_as_written(tmp_path, monkeypatch):
    """README's timm snippet, offline, beside the file it names (here random resnet18 weights,
    saved as its comment says): it builds, classifies clips and loads the file's weights."""
    from readme import readme_snippet

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(2)
    image_model = timm.create_model("resnet18")
    torch.save(image_model.state_dict(), "resnet18_imagenet.pth")
    snippet = readme_snippet(r"import torch, timm, timm_adapters")
    assert "create_model('cpnet_resnet18', num_classes=400, pretrained=True" in snippet
    scope = {}
    exec(compile(snippet.replace("model = timm_adapters", "video = timm_adapters"), "README", "exec"),
         scope)
    assert scope["logits"].shape == (2, 400)
    assert torch.equal(scope["model"].state_dict()["layer4.1.conv2.weight"],
                       image_model.state_dict()["layer4.1.conv2.weight"])
    assert type(scope["video"]).__name__ == "VideoModel"


# ---------------------------------------------------------------------------------------------
# mmaction2.

def test_mmaction_recognizer3d_trains_one_iteration(tmp_path):
    pytest.importorskip("mmaction")
    from mmengine.config import Config
    from mmengine.runner import Runner

    torch.manual_seed(0)
    imagenet = str(tmp_path / "resnet18.pth")
    torch.save(timm.create_model("resnet18").state_dict(), imagenet)

    cfg = Config.fromfile(os.path.join(REPO, "mmaction_configs", "_base_", "toy.py"))
    cfg.work_dir = str(tmp_path / "work")
    cfg.model = dict(
        type="Recognizer3D",
        backbone=dict(type="TimmCPBackbone", model_name="resnet18", cp_blocks="resnet18",
                      cp_cfg=dict(k=4), pretrained=imagenet, model_cfg=dict(in_chans=1)),
        cls_head=dict(type="I3DHead", num_classes=4, in_channels=512, average_clips="prob"),
        data_preprocessor=cfg.data_preprocessor)
    cfg.train_dataloader.batch_size = 8
    cfg.train_dataloader.dataset.num_videos = 8
    cfg.val_dataloader.dataset.num_videos = 4
    cfg.test_dataloader = cfg.val_dataloader
    cfg.train_cfg = dict(type="EpochBasedTrainLoop", max_epochs=1, val_interval=100)
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", interval=100, save_last=False)
    runner = Runner.from_cfg(cfg)

    backbone = runner.model.backbone
    assert type(backbone).__name__ == "TimmCPBackbone" and len(cp_modules(backbone)) == 4
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    # in_chans=1: timm summed the file's RGB filters into one channel.
    stem = torch.load(imagenet)["conv1.weight"].sum(dim=1, keepdim=True)
    assert_close_to_rounding(before["model.conv1.weight"], stem, reduction_length=3)
    runner.train()
    assert runner.iter == 1
    after = backbone.state_dict()
    assert not torch.equal(after["model.layer2.0.act2.module.out_norm.weight"],
                           before["model.layer2.0.act2.module.out_norm.weight"])
    # init_weights kept the pretrained weights: only one Adam step (lr 3e-3) away.
    assert (after["model.conv1.weight"] - stem).abs().max() < 1e-2


@pytest.mark.parametrize("options,error,match", [
    (dict(cp_cfg=dict(kk=4)), TypeError,
     r"^TimmCPBackbone\.cp_cfg: unknown option 'kk' \(did you mean 'k'\?\); valid options: k, "),
    (dict(cp_block="resnet18"), TypeError,
     r"^TimmCPBackbone: unknown option 'cp_block' \(did you mean 'cp_blocks'\?\)"),
    (dict(cp_blocks="resnet19"), ValueError,
     r"^TimmCPBackbone\.cp_blocks: unknown preset 'resnet19' \(did you mean 'resnet18'\?\)"),
])
def test_mmaction_backbone_names_its_config_keys(options, error, match):
    pytest.importorskip("mmaction")
    from mmaction.registry import MODELS

    with pytest.raises(error, match=match):
        MODELS.build(dict(type="TimmCPBackbone", model_name="resnet18", **options))

def test_works_without_mmaction2():
    # A finder first on sys.meta_path makes mmaction2 and mmengine look uninstalled.
    script = textwrap.dedent("""
        import importlib.abc, sys
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split('.')[0] in {'mmaction', 'mmengine', 'mmcv'}:
                    raise ModuleNotFoundError(f'No module named {name!r} (blocked)', name=name)
        sys.meta_path.insert(0, Block())
        import timm, timm_adapters, torch
        model = timm.create_model('cpnet_resnet18', num_classes=3)
        assert model(torch.zeros(1, 3, 4, 32, 32)).shape == (1, 3)
        assert not hasattr(timm_adapters, 'TimmCPBackbone') and 'mmaction' not in sys.modules
        print('ok')
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"

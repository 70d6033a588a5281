"""One block table for both frameworks: a new family is one registration, post- or pre-activation."""
import pytest
import torch
from torch import nn

import cp_plugin
import cp_plugin.blocks
import timm_adapters
from cp_plugin import CPModule
from cp_plugin.call_layout import ClipLayout, clip_layout
from cp_plugin.insertion import ActivationSite, insert_modules, insertion_sites, sites_removed
from cp_plugin.testing import (assert_close_to_rounding, assert_differ_beyond_rounding,
                               summed_fan_in)


class PreActBlock(nn.Module):
    """A pre-activation residual block (BN, ReLU, conv, then the add): it ends with the add."""

    def __init__(self, channels=8):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return x + self.conv(torch.relu(self.bn(x)))


class PreActNet(nn.Module):
    """A 2D backbone of such blocks, run on frames (N*T, C, H, W)."""

    def __init__(self, in_channels=3, channels=8):
        super().__init__()
        self.stem = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.layer1 = nn.Sequential(PreActBlock(channels), PreActBlock(channels))

    def forward(self, x):
        return self.layer1(self.stem(x))

    def init_weights(self):  # mmaction2's VideoBackbone asks every backbone for it
        pass


@pytest.fixture
def pre_act_registered(monkeypatch):
    """PreActBlock entered in the table for this test only."""
    monkeypatch.setattr(cp_plugin.blocks, "_TABLE", dict(cp_plugin.blocks._TABLE))
    return cp_plugin.register_block(PreActBlock, None, out_channels=lambda b: b.conv.out_channels)


def non_identity(site, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        site.module.out_norm.weight.copy_(torch.randn(site.module.out_norm.weight.shape,
                                                      generator=gen))
    return site


def by_hand(net, frames, cp, num_clips):
    """The block's output, then CP on it as a video: what 'after the residual add' means here."""
    with sites_removed(net):  # the plain blocks
        out = net.layer1(net.stem(frames))
    video = cp_plugin.frames_to_video(out, num_clips=num_clips)
    return cp_plugin.video_to_frames(cp(video))


def test_unregistered_then_one_registration(pre_act_registered, monkeypatch):
    net = PreActNet()
    monkeypatch.setattr(cp_plugin.blocks, "_TABLE",
                        {k: v for k, v in cp_plugin.blocks._TABLE.items() if k is not PreActBlock})
    with pytest.raises(cp_plugin.UnsupportedBlockError, match=r"PreActBlock is not a registered"):
        insert_modules(net, ["layer1.1"], lambda c, o: CPModule(c, k=2))
    cp_plugin.blocks._TABLE[PreActBlock] = pre_act_registered
    (site,) = insert_modules(net, ["layer1.1"], lambda c, o: CPModule(c, k=2))
    assert net.layer1[1] is site and isinstance(site.activation, PreActBlock)
    assert site.module.in_channels == 8


def test_after_the_block_keeps_keys_and_computes_cp_on_the_output(pre_act_registered):
    plain = PreActNet()
    net = PreActNet()
    net.load_state_dict(plain.state_dict())
    (site,) = insert_modules(net, ["layer1.1"], lambda c, o: CPModule(c, k=2))
    non_identity(site)
    keys = set(net.state_dict())
    assert set(plain.state_dict()) <= keys
    assert keys - set(plain.state_dict()) == {k for k in keys if k.startswith("layer1.1.module.")}
    missing = PreActNet()
    insert_modules(missing, ["layer1.1"], lambda c, o: CPModule(c, k=2))
    result = missing.load_state_dict(plain.state_dict(), strict=False)
    assert result.unexpected_keys == []
    assert result.missing_keys and all(k.startswith("layer1.1.module.") for k in result.missing_keys)
    missing.load_state_dict(net.state_dict())  # round trip, strict

    frames = torch.randn(2 * 3, 3, 8, 8)
    net.eval()
    with torch.no_grad(), clip_layout(net, ClipLayout(num_clips=2, input_frames=3)):
        ours = net(frames)
    with torch.no_grad():
        expected = by_hand(net, frames, site.module, num_clips=2)
        length = summed_fan_in(net)
        # CP is not the identity here.
        assert_differ_beyond_rounding(ours, plain.eval()(frames), reduction_length=length)
    assert_close_to_rounding(ours, expected, reduction_length=length)
    with sites_removed(net):
        assert isinstance(net.layer1[1], PreActBlock)
    assert net.layer1[1] is site
    with pytest.raises(ValueError, match=r"block 'layer1.1' already has a module after it"):
        insert_modules(net, ["layer1.1"], lambda c, o: CPModule(c, k=2))


def test_timm_and_mmaction_use_the_same_registration(pre_act_registered):
    """The registration above is all either framework's glue needs."""
    from mmaction.registry import MODELS

    import cp_plugin.mmaction  # noqa: F401  the glue, as a config's custom_imports loads it

    net = PreActNet()
    inserted = timm_adapters.insert_cp(net, ["layer1.1"], k=2)  # channels from the probe
    assert inserted["layer1.1"].in_channels == 8 and isinstance(net.layer1[1], ActivationSite)

    MODELS.register_module("PreActNetForTest", module=PreActNet, force=True)
    wrapped = MODELS.build(dict(type="CPBackbone", backbone=dict(type="PreActNetForTest"),
                                cp_blocks=["layer1.1"], cp_cfg=dict(k=2)))
    assert wrapped.frame_input  # its blocks run on frames: clips are flattened for it
    (site,) = insertion_sites(wrapped)
    non_identity(site)
    wrapped.eval()
    clips = torch.randn(2, 3, 3, 8, 8)
    with torch.no_grad():
        ours = wrapped(clips)
        frames = cp_plugin.video_to_frames(clips)
        expected = cp_plugin.frames_to_video(by_hand(wrapped.backbone, frames, site.module, 2),
                                             num_clips=2)
    assert_close_to_rounding(ours, expected, reduction_length=summed_fan_in(wrapped))


def test_registration_arguments_are_checked():
    with pytest.raises(TypeError, match="block_class must be an nn.Module subclass"):
        cp_plugin.register_block(int, "act")
    with pytest.raises(ValueError, match="activation must be the attribute name"):
        cp_plugin.register_block(PreActBlock, "a.b")

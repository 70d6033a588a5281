import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cp_plugin.baselines.artnet import ARTNetResNet18, SMARTBlock, caffe_xavier_init_, cross_channel_pool
from cp_plugin.testing import (assert_close_to_rounding, assert_differ_beyond_rounding,
                               summed_fan_in)


def randomise_norms(module, seed=0):
    """Non-trivial BN affine parameters and running statistics, so eval-mode checks see every BN."""
    gen = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm3d):
            shape = m.weight.shape
            m.weight.data = torch.rand(shape, generator=gen, dtype=m.weight.dtype) + 0.5
            m.bias.data = torch.randn(shape, generator=gen, dtype=m.bias.dtype) * 0.3
            m.running_mean = torch.randn(shape, generator=gen, dtype=m.running_mean.dtype) * 0.3
            m.running_var = torch.rand(shape, generator=gen, dtype=m.running_var.dtype) + 0.5
    return module


def n_params(module):
    return sum(p.numel() for p in module.parameters())


# ------------------------------------------------------------------------------------------ SMART

@pytest.mark.parametrize("kwargs, in_shape, out_shape", [
    (dict(in_channels=16, out_channels=16, temporal_kernel=1, stem=True),
     (2, 16, 4, 12, 12), (2, 16, 4, 12, 12)),
    (dict(in_channels=16, out_channels=16, temporal_kernel=3), (2, 16, 4, 12, 12), (2, 16, 4, 12, 12)),
    (dict(in_channels=8, out_channels=12, temporal_kernel=3, stride=2), (1, 8, 5, 11, 10), (1, 12, 3, 6, 5)),
    (dict(in_channels=8, out_channels=12, temporal_kernel=1, stride=(1, 2, 2), stem=True),
     (1, 8, 5, 11, 10), (1, 12, 5, 6, 5)),
    (dict(in_channels=3, out_channels=64, spatial_kernel=7, temporal_kernel=3, stride=2), (1, 3, 16, 32, 32),
     (1, 64, 8, 16, 16)),
])
def test_smart_output_shape(kwargs, in_shape, out_shape):
    block = SMARTBlock(**kwargs)
    x = torch.randn(in_shape)
    assert block(x).shape == out_shape
    c = kwargs["out_channels"]
    assert block.relation(x).shape == (out_shape[0], c // 2, *out_shape[2:])
    assert block.appearance(x).shape == out_shape


def test_cross_channel_pool_matches_loop_over_channel_pairs():
    r = torch.randn(2, 10, 3, 4, 5, dtype=torch.float64)
    expected = torch.stack([0.5 * (r[:, 2 * i] ** 2 + r[:, 2 * i + 1] ** 2) for i in range(5)], dim=1)
    assert_close_to_rounding(cross_channel_pool(r), expected, reduction_length=2)
    with pytest.raises(ValueError, match="even"):
        cross_channel_pool(torch.randn(1, 3, 1, 1, 1))


@pytest.mark.parametrize("stem", [False, True])
@pytest.mark.parametrize("kt", [1, 3])
def test_smart_forward_matches_functional_spec(stem, kt):
    """conv->BN per branch; square, pair-mean, BN on the relation; concat [a, r]; ReLU; 1x1x1 (+BN, ReLU)."""
    torch.manual_seed(0)
    block = randomise_norms(SMARTBlock(6, 8, 3, kt, stride=(1, 2, 2), stem=stem).double()).eval()
    x = torch.randn(2, 6, 5, 9, 9, dtype=torch.float64)

    def bn(m, v):
        return F.batch_norm(v, m.running_mean, m.running_var, m.weight, m.bias, training=False, eps=m.eps)

    stride = (1, 2, 2)
    a = bn(block.appearance_bn, F.conv3d(x, block.appearance_conv.weight, stride=stride, padding=(0, 1, 1)))
    r = bn(block.relation_bn, F.conv3d(x, block.relation_conv.weight, stride=stride, padding=(kt // 2, 1, 1)))
    r = bn(block.pool_bn, torch.stack([(r[:, 2 * i] ** 2 + r[:, 2 * i + 1] ** 2) / 2 for i in range(4)], 1))
    y = F.conv3d(F.relu(torch.cat([a, r], 1)), block.reduce.weight)
    if stem:
        y = F.relu(bn(block.out[0], y))
    assert_close_to_rounding(block(x), y, reduction_length=summed_fan_in(block))
    assert block.reduce.weight.shape == (8, 12, 1, 1, 1)  # 1.5 C -> C


@pytest.mark.parametrize("kt, sees_next_frame", [(1, False), (3, True)])
def test_relation_temporal_receptive_field(kt, sees_next_frame):
    """SMART 3x3x1 (toy): the relation branch of frame t ignores frame t+1; with kT = 3 it does not."""
    torch.manual_seed(0)
    block = randomise_norms(SMARTBlock(4, 6, 3, kt)).eval()  # eval: batch statistics would couple frames
    x = torch.randn(1, 4, 4, 8, 8)
    x2 = x.clone()
    x2[:, :, 2] += torch.randn_like(x2[:, :, 2])
    with torch.no_grad():
        r, r2 = block.relation(x), block.relation(x2)
    # The changed frame itself changes.
    assert_differ_beyond_rounding(r[:, :, 2], r2[:, :, 2], reduction_length=summed_fan_in(block))
    assert torch.equal(r[:, :, 0], r2[:, :, 0])  # two frames away: outside a 3-frame kernel too
    assert torch.equal(r[:, :, 1], r2[:, :, 1]) is not sees_next_frame


def test_smart_parameters_and_pooling_is_fixed():
    block = SMARTBlock(16, 16, spatial_kernel=3, temporal_kernel=1, stem=True)
    # conv 1x3x3 + BN, conv 1x3x3 + BN, pool BN (8), reduction 24 -> 16, stem BN; the pooling has none.
    expected = 16 * 16 * 9 + 32 + 16 * 16 * 9 + 32 + 16 + 24 * 16 + 32
    assert n_params(block) == expected
    assert not any("pool" in name and "bn" not in name for name, _ in block.named_parameters())
    text = repr(block)
    for part in ("16, 16", "spatial_kernel=3", "temporal_kernel=1", "stride=(1, 1, 1)", "stem=True",
                 "relation_channels=8"):
        assert part in text


def test_smart_stem_output_is_bn_relu_and_non_stem_is_signed():
    torch.manual_seed(0)
    x = torch.randn(2, 4, 3, 6, 6)
    assert (SMARTBlock(4, 8, stem=True)(x) >= 0).all()
    assert (SMARTBlock(4, 8, stem=False)(x) < 0).any()


@pytest.mark.parametrize("kwargs, error, pattern", [
    (dict(in_channels=4, out_channels=7), ValueError, "out_channels must be even"),
    (dict(in_channels=0, out_channels=8), ValueError, "in_channels must be >= 1"),
    (dict(in_channels=4.0, out_channels=8), TypeError, "in_channels must be an int"),
    (dict(in_channels=4, out_channels=8, spatial_kernel=2), ValueError, "spatial_kernel must be odd"),
    (dict(in_channels=4, out_channels=8, temporal_kernel=0), ValueError, "temporal_kernel must be >= 1"),
    (dict(in_channels=4, out_channels=8, temporal_kernel=True), TypeError, "temporal_kernel must be an int"),
    (dict(in_channels=4, out_channels=8, stride=(1, 2)), TypeError, "stride must be an int or a"),
    (dict(in_channels=4, out_channels=8, stride=(1, 0, 1)), ValueError, r"stride\[1\] must be >= 1"),
    (dict(in_channels=4, out_channels=8, stem=1), TypeError, "stem must be a bool"),
])
def test_smart_rejects_bad_arguments(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        SMARTBlock(**kwargs)


def test_smart_rejects_wrong_input():
    with pytest.raises(ValueError, match=r"\(N, 4, T, H, W\)"):
        SMARTBlock(4, 8)(torch.randn(1, 3, 2, 5, 5))
    with pytest.raises(ValueError, match="got shape"):
        SMARTBlock(4, 8)(torch.randn(4, 5, 5))


# --------------------------------------------------------------------------------- ARTNet-ResNet18

@pytest.fixture(scope="module")
def artnet():
    torch.manual_seed(0)
    return ARTNetResNet18()


@pytest.mark.parametrize("in_shape, out_shape", [
    ((2, 3, 8, 112, 112), (2, 512, 1, 7, 7)),
    ((1, 3, 32, 32, 32), (1, 512, 2, 2, 2)),  # every size shrinks to ceil(size / 16)
])
def test_artnet_output_shape(artnet, in_shape, out_shape):
    with torch.no_grad():
        y = artnet.eval()(torch.randn(in_shape))
    assert y.shape == out_shape
    assert artnet.feat_dim == out_shape[1]
    assert (y >= 0).all()  # the last sum goes through BN -> ReLU


def test_artnet_stage_resolutions(artnet):
    """Table of Sec. 1.2: 8x56x56, 8x56x56, 4x28x28, 2x14x14, 1x7x7 for a 16x112x112 clip."""
    clip = torch.randn(1, 3, 16, 112, 112)
    shapes = []
    with torch.no_grad():
        x = artnet.eval().stem(clip)
        shapes.append(tuple(x.shape[1:]))
        for stage in (artnet.res2, artnet.res3, artnet.res4, artnet.res5):
            x = stage(x)
            shapes.append(tuple(x.shape[1:]))
        y = artnet(clip)
    assert torch.equal(y, artnet.final(x))  # the same operations on the same values
    assert y.shape == (1, 512, 1, 7, 7)  # not 2x7x7: the prototxt's head pools 1x7x7 over T' = 1
    assert shapes == [(64, 8, 56, 56), (64, 8, 56, 56), (128, 4, 28, 28), (256, 2, 14, 14), (512, 1, 7, 7)]


def expected_artnet18_params(base=64):
    """Count the prototxt's layer list by hand (bias-free convs, BN = weight + bias)."""
    def conv(cin, cout, *kernel):
        return cin * cout * math.prod(kernel)

    def bn(c):
        return 2 * c

    def smart(cin, c, ks, kt):
        return (conv(cin, c, 1, ks, ks) + bn(c)            # appearance
                + conv(cin, c, kt, ks, ks) + bn(c) + bn(c // 2)  # relation, BN after pair pooling
                + conv(c + c // 2, c, 1, 1, 1))            # reduction

    def unit(cin, cout, use_smart, projection):
        second = smart(cout, cout, 3, 3) if use_smart else conv(cout, cout, 3, 3, 3)
        return (bn(cin)                                     # BN of the incoming sum (redu1_bn / resXy_bn)
                + conv(cin, cout, 3, 3, 3) + bn(cout) + second
                + (conv(cin, cout, 3, 3, 3) if projection else 0))

    w = [base, 2 * base, 4 * base, 8 * base]
    return (smart(3, w[0], 7, 3)
            + unit(w[0], w[0], True, False) + unit(w[0], w[0], True, False)
            + unit(w[0], w[1], True, True) + unit(w[1], w[1], True, False)
            + unit(w[1], w[2], True, True) + unit(w[2], w[2], True, False)
            + unit(w[2], w[3], False, True) + unit(w[3], w[3], False, False)
            + bn(w[3]))                                     # res5b_bn


def test_artnet_parameter_count(artnet):
    count = n_params(artnet)
    print(f"ARTNet-ResNet18 backbone parameters: {count:,}")
    assert count == expected_artnet18_params() == 39_464_000
    assert n_params(ARTNetResNet18(base_channels=8)) == expected_artnet18_params(8)
    assert all(p.requires_grad for p in artnet.parameters())


def test_artnet_structure(artnet):
    smart = [name for name, m in artnet.named_modules() if isinstance(m, SMARTBlock)]
    assert smart == ["stem"] + [f"res{s}.{u}.conv2" for s in (2, 3, 4) for u in (0, 1)]
    stem = artnet.stem
    assert stem.appearance_conv.kernel_size == (1, 7, 7) and stem.relation_conv.kernel_size == (3, 7, 7)
    assert stem.appearance_conv.stride == stem.relation_conv.stride == (2, 2, 2)
    assert (stem.in_channels, stem.out_channels, stem.relation_channels) == (3, 64, 32)
    for name in ("res2", "res3", "res4", "res5"):
        first, second = getattr(artnet, name)
        assert second.shortcut is None
        if name == "res2":
            assert first.shortcut is None
        else:  # 3x3x3 stride-2 projection, no BN
            assert isinstance(first.shortcut, nn.Conv3d)
            assert first.shortcut.kernel_size == (3, 3, 3) and first.shortcut.stride == (2, 2, 2)
    for unit in artnet.res5:
        assert isinstance(unit.conv2, nn.Conv3d) and unit.conv2.kernel_size == (3, 3, 3)
    head_like = (nn.MaxPool3d, nn.AvgPool3d, nn.Linear, nn.Dropout)
    assert not any(isinstance(m, head_like) for m in artnet.modules())


def test_artnet_identity_shortcut_adds_the_raw_stem_output():
    """Prototxt res2a = redu1 + redu2: the skip carries the stem's reduction *before* its BN + ReLU."""
    torch.manual_seed(0)
    net = randomise_norms(ARTNetResNet18(base_channels=8)).eval()
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        s = net.stem(x)
        unit = net.res2[0]
        branch = unit.conv2(unit.conv1(F.relu(unit.pre[0](s))))
        assert_close_to_rounding(unit(s), s + branch, reduction_length=summed_fan_in(unit))
        assert (s < 0).any()  # un-normalised stream, not a ReLU output
        unit3 = net.res3[0]
        expected = unit3.shortcut(F.relu(unit3.pre[0](s))) + unit3.conv2(unit3.conv1(F.relu(unit3.pre[0](s))))
        assert_close_to_rounding(unit3(s), expected, reduction_length=summed_fan_in(unit3))


def test_init_weights_is_caffe_xavier_and_bn_identity(artnet):
    net = randomise_norms(ARTNetResNet18(base_channels=8))
    for p in net.parameters():
        p.data.fill_(7.0)
    net.init_weights()
    for m in net.modules():
        if isinstance(m, nn.Conv3d):
            bound = math.sqrt(3.0 / m.weight[0].numel())
            assert m.weight.abs().max() <= bound
            assert m.weight.abs().max() > 0.5 * bound
        elif isinstance(m, nn.BatchNorm3d):
            assert torch.equal(m.weight, torch.ones_like(m.weight))
            assert torch.equal(m.bias, torch.zeros_like(m.bias))
            assert torch.equal(m.running_mean, torch.zeros_like(m.running_mean))
    big = artnet.res5[1].conv2.weight  # 512*512*27 samples: variance must be 1 / fan_in
    assert big.var().item() == pytest.approx(1.0 / (512 * 27), rel=0.01)
    conv = caffe_xavier_init_(nn.Conv3d(4, 6, 3, bias=True))
    assert torch.equal(conv.bias, torch.zeros(6))


def test_artnet_backward_reaches_every_parameter():
    torch.manual_seed(0)
    net = ARTNetResNet18(base_channels=16).train()
    x = torch.randn(2, 3, 8, 32, 32, requires_grad=True)
    y = net(x)
    assert y.shape == (2, 128, 1, 2, 2)
    (y * torch.randn_like(y)).sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize("kwargs, error, pattern", [
    (dict(base_channels=63), ValueError, "base_channels must be even"),
    (dict(base_channels=0), ValueError, "base_channels must be >= 1"),
    (dict(in_channels=True), TypeError, "in_channels must be an int"),
    (dict(in_channels=3.0), TypeError, "in_channels must be an int"),
])
def test_artnet_rejects_bad_arguments(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        ARTNetResNet18(**kwargs)


def test_artnet_rejects_wrong_input_channels():
    with pytest.raises(ValueError, match=r"ARTNetResNet18 expects a \(N, 3, T, H, W\)"):
        ARTNetResNet18(base_channels=8)(torch.randn(1, 1, 4, 32, 32))

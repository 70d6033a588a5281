# Table 1, "I3D NL Net": conv 3x3x1,16 / NL block / conv 1x1x3,16 / pooling, fc.
# The NL block is mmcv's NonLocal3d (embedded Gaussian, 1/sqrt(C') scaling) at full resolution,
# computed by FusedNonLocal3d (same parameters and output, one fused attention call).
# No sub-sampling of phi and g: the Non-local paper's (1, 2, 2) max pool makes the pooled map
# of a 2x2 square depend on the parity of its position, odd steps flip that parity along the
# motion axis only, and the network learns the axis from it (about 50%, see README).
_base_ = ['../_base_/toy.py']
model = dict(
    type='Recognizer3D',
    backbone=dict(
        type='ToyVideoNet',
        layers=[
            dict(type='ConvBNReLU3d', out_channels=16, kernel_size=(1, 3, 3),
                 padding_mode={{_base_.padding_mode}}),
            dict(type='FusedNonLocal3d', reduction=2, use_scale=True, sub_sample=False,
                 mode='embedded_gaussian', norm_cfg=dict(type='BN3d')),
            dict(type='ConvBNReLU3d', out_channels=16, kernel_size=(3, 1, 1),
                 padding_mode={{_base_.padding_mode}}),
        ]),
    cls_head={{_base_.clip_head}},
    data_preprocessor={{_base_.data_preprocessor}})

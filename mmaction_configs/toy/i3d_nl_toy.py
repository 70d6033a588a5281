# Table 1, "I3D NL Net": conv 3x3x1,16 / NL block / conv 1x1x3,16 / pooling, fc.
# mmcv's NonLocal3d, embedded Gaussian, 1/sqrt(C') scaling, (1, 2, 2) max-pool sub-sampling of
# phi and g as in the Non-local paper. Known cue (see README): the pooled map of a 2x2 square
# depends on the parity of its position, odd steps flip that parity along the motion axis only,
# and this network learns the axis from it (about 50%). Without sub-sampling the cue is gone, but
# the block costs about 4x as much (~180 s per epoch here), beyond make demo's time budget.
_base_ = ['../_base_/toy.py']
model = dict(
    type='Recognizer3D',
    backbone=dict(
        type='ToyVideoNet',
        layers=[
            dict(type='ConvBNReLU3d', out_channels=16, kernel_size=(1, 3, 3),
                 padding_mode={{_base_.padding_mode}}),
            dict(type='NonLocal3d', reduction=2, use_scale=True, sub_sample=True,
                 mode='embedded_gaussian', norm_cfg=dict(type='BN3d')),
            dict(type='ConvBNReLU3d', out_channels=16, kernel_size=(3, 1, 1),
                 padding_mode={{_base_.padding_mode}}),
        ]),
    cls_head={{_base_.clip_head}},
    data_preprocessor={{_base_.data_preprocessor}})

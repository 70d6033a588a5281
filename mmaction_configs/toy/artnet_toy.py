# Table 1, "ARTNet": conv 3x3x3,16 / SMART 3x3x1,16 / pooling, fc. Read literally (H x W x T),
# the SMART relation branch has a temporal kernel of 1; all temporal mixing is in conv1.
_base_ = ['../_base_/toy.py']
custom_imports = dict(
    imports=['cp_plugin.mmaction', 'cp_plugin.toy.mmaction', 'cp_plugin.baselines.mmaction'],
    allow_failed_imports=False)
model = dict(
    type='Recognizer3D',
    backbone=dict(
        type='ToyVideoNet',
        layers=[
            dict(type='ConvBNReLU3d', out_channels=16, kernel_size=(3, 3, 3),
                 padding_mode={{_base_.padding_mode}}),
            dict(type='SMARTBlock', out_channels=16, spatial_kernel=3, temporal_kernel=1,
                 stem=True, padding_mode={{_base_.padding_mode}}),
        ]),
    cls_head={{_base_.clip_head}},
    data_preprocessor={{_base_.data_preprocessor}})

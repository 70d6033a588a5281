# Control, not in Table 1: the CPNet toy without its CP module (conv 3x3x1,16 / conv 3x3x1,16).
_base_ = ['../_base_/toy.py']
model = dict(
    type='Recognizer3D',
    backbone=dict(
        type='ToyVideoNet',
        layers=[
            dict(type='ConvBNReLU3d', out_channels=16, kernel_size=(1, 3, 3),
                 padding_mode={{_base_.padding_mode}}),
            dict(type='ConvBNReLU3d', out_channels=16, kernel_size=(1, 3, 3),
                 padding_mode={{_base_.padding_mode}}),
        ]),
    cls_head={{_base_.clip_head}},
    data_preprocessor={{_base_.data_preprocessor}})

# Table 1, "C2D CPNet": conv 3x3x1,16 / CP module / conv 3x3x1,16 / pooling, fc.
# CP: k=4 (each other frame holds one copy of the square), MLP widths (32, 32).
_base_ = ['../_base_/toy.py']
model = dict(
    type='Recognizer3D',
    backbone=dict(
        type='ToyVideoNet',
        layers=[
            dict(type='ConvBNReLU3d', out_channels=16, kernel_size=(1, 3, 3),
                 padding_mode={{_base_.padding_mode}}),
            dict(type='CPModule', k=4, mlp_channels=(32, 32)),
            dict(type='ConvBNReLU3d', out_channels=16, kernel_size=(1, 3, 3),
                 padding_mode={{_base_.padding_mode}}),
        ]),
    cls_head={{_base_.clip_head}},
    data_preprocessor={{_base_.data_preprocessor}})

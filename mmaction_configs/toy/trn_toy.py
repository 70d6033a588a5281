# Table 1, "TRN": conv 3x3x1,16 / conv 3x3x1,16 / pooling / temporal relation / fc, with
# mmaction2's TRNHead (multi-scale relations over the 4 frames) on per-frame max-pooled features.
_base_ = ['../_base_/toy.py']
pipeline = [dict(type='FormatShape', input_format='NCHW'), dict(type='PackActionInputs')]
train_dataloader = dict(dataset=dict(pipeline=pipeline))
val_dataloader = dict(dataset=dict(pipeline=pipeline))
test_dataloader = val_dataloader
model = dict(
    type='Recognizer2D',
    backbone=dict(
        type='ToyVideoNet',
        pooling='spatial',
        num_segments=4,
        layers=[
            dict(type='ConvBNReLU3d', out_channels=16, kernel_size=(1, 3, 3),
                 padding_mode={{_base_.padding_mode}}),
            dict(type='ConvBNReLU3d', out_channels=16, kernel_size=(1, 3, 3),
                 padding_mode={{_base_.padding_mode}}),
        ]),
    cls_head=dict(
        type='TRNHead', num_classes=4, in_channels=16, num_segments=4, spatial_type='avg',
        relation_type='TRNMultiScale', hidden_dim=32, dropout_ratio=0.0, init_std=0.001,
        average_clips='prob'),
    data_preprocessor=dict(
        type='ActionDataPreprocessor', mean=[0.0], std=[255.0], format_shape='NCHW'))

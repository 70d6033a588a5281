# C2D ResNet-18 as in the CPNet paper's Table 2: every convolution is 2D and T is never pooled;
# global average pooling over (T, H, W), dropout 0.5, fc. mmaction2's own `C2D` pools T after
# res2, so the plain 2D `ResNet` runs on each frame inside `VideoBackbone` instead, and
# Recognizer3D + I3DHead give the (T, H, W) pooling and per-view score averaging.
_base_ = ['../imagenet.py']
model = dict(
    type='Recognizer3D',
    backbone=dict(
        type='VideoBackbone',
        backbone=dict(
            type='ResNet',
            depth=18,
            pretrained={{_base_.imagenet_checkpoints.resnet18}},
            torchvision_pretrain=True,
            norm_eval=False)),
    cls_head=dict(
        type='I3DHead',
        num_classes=400,
        in_channels=512,
        spatial_type='avg',
        dropout_ratio=0.5,
        init_std=0.01,
        average_clips='prob'),
    data_preprocessor=dict(
        type='ActionDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        format_shape='NCTHW'))

# ARTNet-ResNet18 (Wang et al., CVPR 2018), SMART blocks in conv1 and res2-res4, trained from
# scratch as in the ARTNet paper; head: average pooling, dropout 0.2, fc.
model = dict(
    type='Recognizer3D',
    backbone=dict(type='ARTNetResNet18'),
    cls_head=dict(
        type='I3DHead',
        num_classes=400,
        in_channels=512,
        spatial_type='avg',
        dropout_ratio=0.2,
        init_std=0.01,
        average_clips='prob'),
    data_preprocessor=dict(
        type='ActionDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        format_shape='NCTHW'))

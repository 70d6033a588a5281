_base_ = ['c2d_r18.py']
model = dict(
    backbone=dict(backbone=dict(depth=101, pretrained={{_base_.imagenet_checkpoints.resnet101}})),
    cls_head=dict(in_channels=2048))

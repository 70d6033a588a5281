_base_ = ['c2d_r18.py']
model = dict(
    backbone=dict(backbone=dict(depth=34, pretrained={{_base_.imagenet_checkpoints.resnet34}})))

# The authors' ResNet-101 placement: last 2 blocks of res3 and last 3 of res4, k=4,
# a C/8 linear bottleneck before the search and a one-layer MLP of width C/8.
_base_ = ['c2d_r101.py']
model = dict(backbone=dict(type='CPBackbone', cp_blocks='resnet101', cp_cfg=dict()))

# The authors' ResNet-34 placement: last 2 blocks of res3 and last 3 of res4 (5 CP), k=8.
_base_ = ['c2d_r34.py']
model = dict(backbone=dict(type='CPBackbone', cp_blocks='resnet34', cp_cfg=dict()))

# CPNet: C2D with CP modules after the residual add of chosen blocks (before the block's ReLU).
# 'resnet18' = the authors' placement: every block of res3 (x2 shrink before the search) and
# res4, k=8, MLP widths (C/4, C/2).
_base_ = ['c2d_r18.py']
model = dict(backbone=dict(type='CPBackbone', cp_blocks='resnet18', cp_cfg=dict()))

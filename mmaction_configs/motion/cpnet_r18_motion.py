# CPNet-R18 as a user makes it: README's config edit on the C2D-R18 config, starting from the
# same checkpoint (`load_from`): the CP modules are new (identity at the start), the rest loads.
_base_ = ['c2d_r18_motion.py']
model = dict(backbone=dict(
    _delete_=True,
    type='CPBackbone',
    backbone={{_base_.model.backbone}},
    cp_blocks='resnet18',
    cp_cfg=dict(k=8),
    num_segments={{_base_.num_frames}}))

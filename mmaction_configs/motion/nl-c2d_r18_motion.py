# C2D-R18 with Non-local blocks where the shipped NL configs put them (after res3.1 and res4.1,
# mmcv's NonLocal3d, embedded Gaussian), from the appearance-stage checkpoint.
_base_ = ['c2d_r18_motion.py', '../_base_/models/nonlocal.py']
model = dict(backbone=dict(
    _delete_=True,
    type='VideoBackbone',
    backbone={{_base_.model.backbone}},
    insertions=[_base_.nonlocal_insertion],
    num_segments={{_base_.num_frames}}))
